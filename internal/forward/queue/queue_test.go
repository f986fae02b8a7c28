package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type delivery struct {
	from, to string
	data     []byte
}

// fakeCourier answers with reply(to, attempt) and reports every delivery
// attempt on a channel.
type fakeCourier struct {
	mu       sync.Mutex
	attempts map[string]int
	reply    func(to string, attempt int) (error, bool)
	got      chan delivery
}

func newFake(reply func(to string, attempt int) (error, bool)) *fakeCourier {
	return &fakeCourier{attempts: map[string]int{}, reply: reply, got: make(chan delivery, 100)}
}

func (f *fakeCourier) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	f.mu.Lock()
	f.attempts[to]++
	n := f.attempts[to]
	f.mu.Unlock()
	var err error
	var perm bool
	if f.reply != nil {
		err, perm = f.reply(to, n)
	}
	f.got <- delivery{from, to, append([]byte(nil), data...)}
	return err, perm
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func open(t *testing.T, dir string, c Courier, mod func(*Config)) *Queue {
	t.Helper()
	cfg := Config{Dir: dir, Courier: c, Logger: testLogger(t), Hostname: "mx.id.test",
		MinRetry: time.Millisecond, MaxRetry: 2 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	q, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func run(t *testing.T, q *Queue) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func next(t *testing.T, c chan delivery) delivery {
	t.Helper()
	select {
	case d := <-c:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery attempt")
		return delivery{}
	}
}

// waitEmpty waits until the queue holds no item (the worker removed it).
func waitEmpty(t *testing.T, q *Queue) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for q.Stats().Depth != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue not empty: %+v", q.List())
		}
		time.Sleep(time.Millisecond)
	}
}

const msg = "From: a@origin.test\r\nTo: u@id.test\r\nSubject: hi\r\nMessage-ID: <1@origin.test>\r\n\r\nbody\r\n.dot\r\n"

func TestPutDeliver(t *testing.T) {
	dir := t.TempDir()
	f := newFake(nil)
	q := open(t, dir, f, nil)
	id, err := q.Put(context.Background(), Envelope{From: "a@origin.test", To: []string{"r@dest.test"}}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	// Durable before delivery even starts.
	for _, ext := range []string{envExt, dataExt} {
		if _, err := os.Stat(filepath.Join(dir, id+ext)); err != nil {
			t.Fatalf("after Put: %v", err)
		}
	}
	run(t, q)
	d := next(t, f.got)
	if d.from != "a@origin.test" || d.to != "r@dest.test" || string(d.data) != msg {
		t.Fatalf("delivered %+v", d)
	}
	waitEmpty(t, q)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("files left after delivery: %v", ents)
	}
	if s := q.Stats(); s.Queued != 1 || s.Delivered != 1 || s.Deferred != 0 || s.Bounced != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestPutRejects(t *testing.T) {
	q := open(t, t.TempDir(), newFake(nil), nil)
	for _, env := range []Envelope{
		{From: "a@x.test"},
		{From: "a@x.test\r\nRCPT TO:<b@y>", To: []string{"b@y.test"}},
		{From: "a@x.test", To: []string{"b@y.test"}, Original: []string{"1", "2"}},
	} {
		if _, err := q.Put(context.Background(), env, []byte(msg)); err == nil {
			t.Errorf("Put(%+v) succeeded", env)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := q.Put(ctx, Envelope{To: []string{"b@y.test"}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}

func TestRestartSurvives(t *testing.T) {
	dir := t.TempDir()
	q1 := open(t, dir, newFake(nil), nil) // never run: as if killed before delivery
	var ids []string
	for i := range 3 {
		id, err := q1.Put(context.Background(), Envelope{From: "a@origin.test", To: []string{fmt.Sprintf("r%d@dest.test", i)}}, []byte(msg+fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Leftovers of an interrupted Put: they were never acknowledged.
	os.WriteFile(filepath.Join(dir, "0123456789ABCDEF"+dataExt), []byte("orphan"), 0o600)
	os.WriteFile(filepath.Join(dir, ids[0]+envExt+".X"+tmpExt), []byte("{"), 0o600)

	f := newFake(nil)
	q2 := open(t, dir, f, nil)
	list := q2.List()
	if len(list) != 3 {
		t.Fatalf("after restart List() = %+v", list)
	}
	listed, err := ReadDir(dir)
	if err != nil || len(listed) != 3 || listed[0].ID != list[0].ID {
		t.Fatalf("ReadDir = %+v, %v", listed, err)
	}
	for _, name := range []string{"0123456789ABCDEF" + dataExt, ids[0] + envExt + ".X" + tmpExt} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s not cleaned up: %v", name, err)
		}
	}
	run(t, q2)
	got := map[string]string{}
	for range 3 {
		d := next(t, f.got)
		got[d.to] = string(d.data)
	}
	for i := range 3 {
		if got[fmt.Sprintf("r%d@dest.test", i)] != msg+fmt.Sprint(i) {
			t.Fatalf("after restart delivered %q", got)
		}
	}
	waitEmpty(t, q2)
}

func TestCorruptEnvelopeKept(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "0123456789ABCDEF"+envExt)
	os.WriteFile(bad, []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "0123456789ABCDEF"+dataExt), []byte(msg), 0o600)
	q := open(t, dir, newFake(nil), nil)
	if n := len(q.List()); n != 0 {
		t.Fatalf("corrupt item loaded: %d", n)
	}
	if _, err := os.Stat(bad); err != nil {
		t.Fatalf("corrupt envelope deleted: %v", err)
	}
}

func TestRetryThenDeliver(t *testing.T) {
	f := newFake(func(to string, n int) (error, bool) {
		if n < 3 {
			return errors.New("451 4.3.0 try later"), false
		}
		return nil, false
	})
	q := open(t, t.TempDir(), f, nil)
	run(t, q)
	if _, err := q.Put(context.Background(), Envelope{From: "a@origin.test", To: []string{"r@dest.test"}}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		next(t, f.got)
	}
	waitEmpty(t, q)
	if s := q.Stats(); s.Deferred != 2 || s.Delivered != 1 || s.Bounced != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// parseDSN checks the RFC 3464 structure and returns the delivery-status part.
func parseDSN(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("DSN Content-Type %q %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var status, headers string
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.SplitN(ct, ";", 2)[0])
		switch {
		case strings.HasPrefix(ct, "message/delivery-status"):
			status = string(b)
		case strings.HasPrefix(ct, "text/rfc822-headers"):
			headers = string(b)
		}
	}
	if strings.Join(types, ",") != "text/plain,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("DSN parts %v", types)
	}
	return m, status, headers
}

func TestPermanentFailureDSN(t *testing.T) {
	f := newFake(func(to string, n int) (error, bool) {
		if to == "real@gmail.test" {
			return errors.New("550 5.1.1 <real@gmail.test>: user unknown"), true
		}
		return nil, false
	})
	q := open(t, t.TempDir(), f, nil)
	run(t, q)
	_, err := q.Put(context.Background(), Envelope{
		From: "jira@atlassian.test", To: []string{"real@gmail.test", "ok@dest.test"},
		Original: []string{"john@id.test", "mary@id.test"},
	}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var dsn *delivery
	for range 3 {
		d := next(t, f.got)
		if d.to == "jira@atlassian.test" {
			dsn = &d
		}
	}
	if dsn == nil || dsn.from != "" {
		t.Fatalf("no DSN from the null sender: %+v", dsn)
	}
	m, status, headers := parseDSN(t, dsn.data)
	if m.Header.Get("To") != "<jira@atlassian.test>" || !strings.HasPrefix(m.Header.Get("From"), "Mail Delivery System <MAILER-DAEMON@mx.id.test>") {
		t.Errorf("DSN header %v", m.Header)
	}
	for _, want := range []string{"Reporting-MTA: dns; mx.id.test", "Final-Recipient: rfc822; john@id.test",
		"Original-Recipient: rfc822; john@id.test", "Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 <john@id.test>: user unknown"} {
		if !strings.Contains(status, want+"\r\n") {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if strings.Contains(string(dsn.data), "real@gmail.test") || strings.Contains(status, "mary@id.test") {
		t.Errorf("DSN discloses the real address or names a delivered one:\n%s", dsn.data)
	}
	if !strings.Contains(headers, "Message-ID: <1@origin.test>") || strings.Contains(headers, "body") {
		t.Errorf("rfc822-headers part %q", headers)
	}
	waitEmpty(t, q)
	if s := q.Stats(); s.Bounced != 1 || s.Delivered != 2 || s.Queued != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNullSenderNoDSN(t *testing.T) {
	f := newFake(func(string, int) (error, bool) { return errors.New("550 no"), true })
	q := open(t, t.TempDir(), f, nil)
	run(t, q)
	if _, err := q.Put(context.Background(), Envelope{From: "<>", To: []string{"r@dest.test"}}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	next(t, f.got)
	waitEmpty(t, q)
	if s := q.Stats(); s.Queued != 1 || s.Bounced != 1 {
		t.Fatalf("a DSN was queued for the null sender: %+v", s)
	}
}

func TestLifetimeExpiry(t *testing.T) {
	// The clock runs with real time plus a skew that the courier moves.
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f := newFake(func(to string, n int) (error, bool) {
		if to == "r@dest.test" {
			// Every attempt fails: the first an hour in (deferred), the
			// second six days in (past the 5-day lifetime: bounced).
			at := time.Hour
			if n > 1 {
				at = 6 * 24 * time.Hour
			}
			skew.Store(int64(at))
			return errors.New("dial tcp: connection refused"), false
		}
		return nil, false
	})
	q := open(t, t.TempDir(), f, func(c *Config) { c.Now = now })
	run(t, q)
	if _, err := q.Put(context.Background(), Envelope{From: "s@origin.test", To: []string{"r@dest.test"}}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if d := next(t, f.got); d.to != "r@dest.test" {
			t.Fatalf("attempt %+v", d)
		}
	}
	d := next(t, f.got)
	if d.to != "s@origin.test" {
		t.Fatalf("expected the DSN after the lifetime, got %+v", d)
	}
	_, status, _ := parseDSN(t, d.data)
	if !strings.Contains(status, "Status: 4.4.7\r\n") || !strings.Contains(status, "Action: failed\r\n") {
		t.Fatalf("delivery-status:\n%s", status)
	}
	waitEmpty(t, q)
	if s := q.Stats(); s.Deferred != 1 || s.Bounced != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestBackoff(t *testing.T) {
	q := open(t, t.TempDir(), newFake(nil), func(c *Config) { c.MinRetry = time.Minute; c.MaxRetry = time.Hour })
	for _, tc := range []struct {
		attempts int
		base     time.Duration
	}{{1, time.Minute}, {2, 2 * time.Minute}, {4, 8 * time.Minute}, {7, time.Hour}, {50, time.Hour}} {
		for range 20 {
			d := q.backoff(tc.attempts)
			if d < tc.base*8/10 || d > tc.base*12/10 {
				t.Fatalf("backoff(%d) = %v, want %v ±20%%", tc.attempts, d, tc.base)
			}
		}
	}
}

func TestPerDomainLimit(t *testing.T) {
	var cur, peak atomic.Int32
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	c := courierFunc(func(ctx context.Context, from, to string, data []byte) (error, bool) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- struct{}{}
		<-release
		cur.Add(-1)
		return nil, false
	})
	q := open(t, t.TempDir(), c, func(c *Config) { c.PerDomain = 2 })
	run(t, q)
	for i := range 5 {
		if _, err := q.Put(context.Background(), Envelope{From: "s@o.test", To: []string{fmt.Sprintf("r%d@dest.test", i)}}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	<-started
	<-started // two deliveries are in progress at once
	close(release)
	waitEmpty(t, q)
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrency per domain %d, want 2", p)
	}
}

type courierFunc func(ctx context.Context, from, to string, data []byte) (error, bool)

func (f courierFunc) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	return f(ctx, from, to, data)
}

// TestCrash kills a process that is queueing messages with SIGKILL and
// checks that every message whose Put returned is in the queue afterwards.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("IDBRIDGE_QUEUE_CRASH_DIR"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a subprocess")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$")
	cmd.Env = append(os.Environ(), "IDBRIDGE_QUEUE_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 200 {
		id, body, ok := strings.Cut(sc.Text(), " ")
		if ok {
			acked[id] = body
		}
	}
	cmd.Process.Kill() // SIGKILL in the middle of further Puts
	cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d messages", len(acked))
	}
	q := open(t, dir, newFake(nil), nil)
	have := map[string]bool{}
	for _, it := range q.List() {
		have[it.ID] = true
	}
	for id, body := range acked {
		if !have[id] {
			t.Fatalf("acknowledged message %s lost", id)
		}
		data, err := os.ReadFile(filepath.Join(dir, id+dataExt))
		if err != nil || !strings.HasSuffix(string(data), body+"\r\n") {
			t.Fatalf("message %s: %q, %v", id, data, err)
		}
	}
}

func crashChild(dir string) {
	q, err := Open(Config{Dir: dir, Courier: newFake(nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		os.Exit(3)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		body := fmt.Sprintf("message-%d", i)
		id, err := q.Put(context.Background(), Envelope{From: "s@o.test", To: []string{"r@d.test"}}, []byte(msg+body+"\r\n"))
		if err != nil {
			os.Exit(4)
		}
		fmt.Fprintf(w, "%s %s\n", id, body)
		w.Flush()
	}
}
