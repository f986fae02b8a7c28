package forward

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// atlassianSample has the shape of https://ip-ranges.atlassian.com/.
const atlassianSample = `{
 "creationDate": "2024-05-01T00:00:00.000000",
 "syncToken": 1714521600,
 "items": [
  {"network":"192.0.2.0","mask_len":24,"cidr":"192.0.2.0/24","mask":"255.255.255.0","region":["us-east-1"],"product":["email"],"direction":["egress"],"perimeter":"mail"},
  {"network":"2001:db8::","mask_len":32,"cidr":"2001:db8::/32","mask":"ffff:ffff::","region":["global"],"product":["email","jira"],"direction":["egress","ingress"]},
  {"cidr":"198.51.100.0/24","product":["email"],"direction":["ingress"]},
  {"cidr":"203.0.113.0/24","product":["jira","confluence"],"direction":["egress"]},
  {"cidr":"not a cidr","product":["bitbucket"],"direction":["egress"]}
 ]
}`

func TestParseIPRanges(t *testing.T) {
	got, err := ParseIPRanges([]byte(atlassianSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(got, want) {
		t.Errorf("ParseIPRanges = %v, want %v", got, want)
	}

	for name, doc := range map[string]string{
		"not json":       `<html>maintenance</html>`,
		"truncated":      atlassianSample[:200],
		"no items":       `{"syncToken":1}`,
		"null items":     `{"items":null}`,
		"no email":       `{"items":[{"cidr":"203.0.113.0/24","product":["jira"],"direction":["egress"]}]}`,
		"empty":          `{"items":[]}`,
		"bad email cidr": `{"items":[{"cidr":"192.0.2.0/33","product":["email"],"direction":["egress"]}]}`,
		"wrong types":    `{"items":[{"cidr":1,"product":"email","direction":"egress"}]}`,
	} {
		if ps, err := ParseIPRanges([]byte(doc)); err == nil {
			t.Errorf("%s: ParseIPRanges = %v, want an error", name, ps)
		}
	}
}

func ranges(cidrs ...string) string {
	var items []string
	for _, c := range cidrs {
		items = append(items, `{"cidr":"`+c+`","product":["email"],"direction":["egress"]}`)
	}
	return `{"items":[` + strings.Join(items, ",") + `]}`
}

func writeFile(t *testing.T, name, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// Set the mtime explicitly: two writes within the file system's time
	// resolution would otherwise look unchanged.
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestIPRangesFileReload(t *testing.T) {
	f := filepath.Join(t.TempDir(), "ranges.json")
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	writeFile(t, f, ranges("192.0.2.0/24"), t0)

	logs := &syncBuffer{}
	r := newIPRanges([]string{f}, nil, nil, slog.New(slog.NewTextHandler(logs, nil)))
	if err := r.loadFiles(true); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("198.51.100.7")
	check := func(step string, wantA, wantB bool) {
		t.Helper()
		if r.Contains(a) != wantA || r.Contains(b) != wantB {
			t.Errorf("%s: contains %v=%v %v=%v, want %v %v", step, a, r.Contains(a), b, r.Contains(b), wantA, wantB)
		}
	}
	check("first load", true, false)
	if !r.Contains(netip.MustParseAddr("::ffff:192.0.2.7")) {
		t.Error("an IPv4-mapped IPv6 address is not matched")
	}

	// Same mtime: not re-read, even though the content changed.
	writeFile(t, f, ranges("198.51.100.0/24"), t0)
	r.loadFiles(false)
	check("unchanged mtime", true, false)

	// New mtime: re-read.
	writeFile(t, f, ranges("198.51.100.0/24"), t0.Add(time.Second))
	if err := r.loadFiles(false); err != nil {
		t.Fatal(err)
	}
	check("changed mtime", false, true)

	// Invalid content: the last good list stays, and an error is logged.
	writeFile(t, f, `{"items": [`, t0.Add(2*time.Second))
	if err := r.loadFiles(false); err == nil {
		t.Error("invalid file: no error")
	}
	check("invalid file", false, true)
	if !strings.Contains(logs.String(), "keeping the last good list") {
		t.Errorf("no error logged:\n%s", logs)
	}

	// Removed file: the last good list stays.
	os.Remove(f)
	if err := r.loadFiles(false); err == nil {
		t.Error("missing file: no error")
	}
	check("missing file", false, true)

	// Back, and an explicit reload (SIGHUP) reads it whatever its mtime.
	writeFile(t, f, ranges("192.0.2.0/24", "198.51.100.0/24"), t0)
	if err := r.loadFiles(true); err != nil {
		t.Fatal(err)
	}
	check("forced reload", true, true)
}

// rangesServer serves an IP-ranges document that the test can change.
type rangesServer struct {
	mu     sync.Mutex
	status int
	body   string
	hits   chan struct{}
}

func (s *rangesServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	status, body := s.status, s.body
	s.mu.Unlock()
	w.WriteHeader(status)
	w.Write([]byte(body))
	select {
	case s.hits <- struct{}{}:
	default:
	}
}

func (s *rangesServer) set(status int, body string) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func TestIPRangesURLReloadAndFailures(t *testing.T) {
	rs := &rangesServer{status: 200, body: ranges("192.0.2.0/24"), hits: make(chan struct{}, 1)}
	hs := httptest.NewServer(rs)
	defer hs.Close()

	e := start(t, func(c *Config) {
		c.IPRangesURLs = []string{hs.URL + "/ip-ranges.json"}
		c.IPRangesRefresh = time.Hour
	})
	ctx := context.Background()
	in := netip.MustParseAddr("192.0.2.1")
	if err := e.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if !e.srv.senderNetworkAllowed(in) {
		t.Fatal("URL list not loaded")
	}
	for name, set := range map[string]func(){
		"invalid json": func() { rs.set(200, `{"items":`) },
		"http 500":     func() { rs.set(500, "oops") },
		"no email":     func() { rs.set(200, `{"items":[{"cidr":"10.0.0.0/8","product":["jira"],"direction":["egress"]}]}`) },
	} {
		set()
		if err := e.srv.Reload(ctx); err == nil {
			t.Errorf("%s: Reload gave no error", name)
		}
		if !e.srv.senderNetworkAllowed(in) {
			t.Errorf("%s: last good list dropped", name)
		}
	}
	rs.set(200, ranges("198.51.100.0/24"))
	if err := e.srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if e.srv.senderNetworkAllowed(in) || !e.srv.senderNetworkAllowed(netip.MustParseAddr("198.51.100.9")) {
		t.Error("new URL list not in effect")
	}
	// Unreachable: the last good list stays.
	hs.Close()
	if err := e.srv.Reload(ctx); err == nil {
		t.Error("unreachable: Reload gave no error")
	}
	if !e.srv.senderNetworkAllowed(netip.MustParseAddr("198.51.100.9")) {
		t.Error("unreachable: last good list dropped")
	}
	if !strings.Contains(e.logs.String(), "keeping the last good list") {
		t.Error("failures were not logged")
	}
}

// TestIPRangesRefreshLoop checks that Serve fetches the URL at start and
// again on the interval: it waits for the fetches, it does not time them.
func TestIPRangesRefreshLoop(t *testing.T) {
	rs := &rangesServer{status: 200, body: ranges("192.0.2.0/24"), hits: make(chan struct{})}
	hs := httptest.NewServer(rs)
	defer hs.Close()
	start(t, func(c *Config) {
		c.IPRangesURLs = []string{hs.URL}
		c.IPRangesRefresh = 10 * time.Millisecond
	})
	for i := range 3 {
		select {
		case <-rs.hits:
		case <-time.After(30 * time.Second):
			t.Fatalf("fetch %d never came", i+1)
		}
	}
}

func TestIPRangesUnreachableURLFailsNothing(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close() // nothing listens there now
	e := start(t, func(c *Config) { c.IPRangesURLs = []string{url} })
	if err := e.srv.Reload(context.Background()); err == nil {
		t.Error("no error for an unreachable URL")
	}
	if e.srv.senderNetworkAllowed(netip.MustParseAddr("192.0.2.1")) {
		t.Error("allowed with no list")
	}
	// A list that never loaded may lack this sender: the refusal is
	// temporary, so the sender retries instead of bouncing its mail.
	if stage, code, text := transaction(t, e.addr, "jira@atlassian.test", []string{"john@" + vd}, simpleMsg); stage != "mail" || code != 451 {
		t.Errorf("with the list never loaded: %s %d %s, want 451 at MAIL", stage, code, text)
	}
}

// Once every list has loaded, a sender outside them is refused for good.
func TestIPRangesLoadedRefusalIsPermanent(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(ranges("192.0.2.0/24")))
	}))
	defer hs.Close()
	e := start(t, func(c *Config) { c.IPRangesURLs = []string{hs.URL} })
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stage, code, text := transaction(t, e.addr, "jira@atlassian.test", []string{"john@" + vd}, simpleMsg); stage != "mail" || code != 550 {
		t.Errorf("sender outside a loaded list: %s %d %s, want 550 at MAIL", stage, code, text)
	}
}

func FuzzParseIPRanges(f *testing.F) {
	f.Add([]byte(atlassianSample))
	f.Add([]byte(ranges("192.0.2.0/24")))
	f.Add([]byte(`{"items":[]}`))
	f.Add([]byte(`{"items":[{"cidr":"::/0","product":["email"],"direction":["egress"]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseIPRanges(data)
		if err != nil {
			if ps != nil {
				t.Fatal("prefixes returned with an error")
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("an empty list accepted")
		}
		for _, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("prefix %v is not valid and masked", p)
			}
		}
	})
}

// TestIPRangesAllowSession: a client whose address is only in an IP-ranges
// file may send, and keeps that right when the file turns bad.
func TestIPRangesAllowSession(t *testing.T) {
	f := filepath.Join(t.TempDir(), "atlassian-ip-ranges.json")
	writeFile(t, f, ranges("127.0.0.1/32"), time.Now())
	e := start(t, func(c *Config) { c.IPRangesFiles = []string{f} })
	if stage, code, text := transaction(t, e.addr, "jira@atlassian.test", []string{"john@" + vd}, simpleMsg); stage != "" {
		t.Fatalf("sender in the ranges file: %s %d %s", stage, code, text)
	}
	writeFile(t, f, "garbage", time.Now().Add(time.Minute))
	if err := e.srv.Reload(context.Background()); err == nil {
		t.Error("Reload of a bad file gave no error")
	}
	if stage, code, text := transaction(t, e.addr, "jira@atlassian.test", []string{"john@" + vd}, simpleMsg); stage != "" {
		t.Errorf("after a bad reload: %s %d %s", stage, code, text)
	}
	writeFile(t, f, ranges("192.0.2.0/24"), time.Now().Add(2*time.Minute))
	if err := e.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stage, code, _ := transaction(t, e.addr, "jira@atlassian.test", []string{"john@" + vd}, simpleMsg); stage != "mail" || code != 550 {
		t.Errorf("after the address left the list: %s %d", stage, code)
	}
}
