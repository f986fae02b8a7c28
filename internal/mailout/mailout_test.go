package mailout

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/forward/courier"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/sqlite"
	"github.com/idbridge/idbridge/internal/testlib"
)

var _ account.Mailer = (*Mailer)(nil)

func newStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir()+"/db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newMailer(t *testing.T, st store.Store) *Mailer {
	t.Helper()
	m, err := New(st, Config{From: "Example ID <noreply@id.example.org>", BaseURL: "https://id.example.org"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRenderAll(t *testing.T) {
	m := newMailer(t, newStore(t))
	for _, name := range Templates {
		msg, subject, err := m.Render("ada@example.org", name, map[string]string{
			"url": "https://id.example.org/verify?token=abc&x=<y>", "username": "ada", "first_name": "Ada <b>",
		})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(subject, "Example ID") {
			t.Errorf("%s: subject %q lacks the site name", name, subject)
		}
		p, err := mail.ReadMessage(bytes.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version"} {
			if p.Header.Get(h) == "" {
				t.Errorf("%s: no %s header", name, h)
			}
		}
		if _, err := p.Header.Date(); err != nil {
			t.Errorf("%s: Date: %v", name, err)
		}
		mt, params, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/alternative" {
			t.Fatalf("%s: content type %q", name, p.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(p.Body, params["boundary"])
		var types []string
		for {
			part, err := mr.NextPart() // decodes quoted-printable
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(part)
			ct := part.Header.Get("Content-Type")
			types = append(types, ct)
			if strings.HasPrefix(ct, "text/html") {
				if strings.Contains(string(body), "Ada <b>") {
					t.Errorf("%s: HTML not escaped", name)
				}
				if !strings.Contains(string(body), "token=abc&amp;x=%3cy%3e") {
					t.Errorf("%s: link missing in HTML:\n%s", name, body)
				}
			} else if !strings.Contains(string(body), "https://id.example.org/verify?token=abc&x=<y>") {
				t.Errorf("%s: link missing in text:\n%s", name, body)
			}
		}
		if len(types) != 2 || !strings.HasPrefix(types[0], "text/plain") || !strings.HasPrefix(types[1], "text/html") {
			t.Errorf("%s: parts %v", name, types)
		}
	}
	if _, _, err := m.Render("a@example.org", "nope", nil); err == nil {
		t.Error("unknown template rendered")
	}
}

func TestRateLimit(t *testing.T) {
	st := newStore(t)
	m := newMailer(t, st)
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m.SetClock(func() time.Time { return now })
	for i := range 8 {
		to := "Ada@Example.org"
		if i%2 == 1 {
			to = "ada@example.org"
		}
		if err := m.Send(ctx, to, "verify_email", map[string]string{"url": "u"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Send(ctx, "bob@example.org", "verify_email", nil); err != nil {
		t.Fatal(err)
	}
	l, _ := st.ListMail(ctx, 0)
	if len(l) != 6 {
		t.Fatalf("%d queued, want 5 for ada and 1 for bob", len(l))
	}
	now = now.Add(61 * time.Minute)
	m.Send(ctx, "ada@example.org", "verify_email", nil)
	if l, _ := st.ListMail(ctx, 0); len(l) != 7 {
		t.Fatalf("after the window: %d", len(l))
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// testServer is a go-smtp server that records what it got.
type testServer struct {
	mu       sync.Mutex
	msgs     [][]byte
	authUser string
	tls      []bool
	reply    *smtp.SMTPError // answer DATA with this, when set
}

type testSession struct {
	srv  *testServer
	conn *smtp.Conn
}

func (s *testSession) Reset()                               {}
func (s *testSession) Logout() error                        { return nil }
func (s *testSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *testSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *testSession) AuthMechanisms() []string             { return []string{sasl.Plain} }
func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "idbridge" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.srv.mu.Lock()
		s.srv.authUser = user
		s.srv.mu.Unlock()
		return nil
	}), nil
}
func (s *testSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.reply != nil {
		return s.srv.reply
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.msgs = append(s.srv.msgs, b)
	s.srv.tls = append(s.srv.tls, isTLS)
	return nil
}

// startServer runs a go-smtp server; withTLS offers STARTTLS, implicit
// listens with TLS from the first byte.
func startServer(t *testing.T, withTLS, implicit bool) (*testServer, string, *x509.CertPool) {
	t.Helper()
	ts := &testServer{}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &testSession{srv: ts, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true // the client is what is tested
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	cert, pool := selfSigned(t)
	var l net.Listener
	var err error
	if withTLS || implicit {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	if implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return ts, l.Addr().String(), pool
}

// The smarthost client itself (TLS modes, AUTH only over TLS or to loopback)
// is internal/forward/courier's, tested there; here it carries mailout's queue.
func viaSmarthost(addr string, tlsMode courier.TLSMode, cfg *tls.Config) Delivery {
	return ViaCourier(&courier.Smarthost{Address: addr, TLS: tlsMode, TLSConfig: cfg, Hostname: "id.example.org", Timeout: 10 * time.Second})
}

func TestSenderRetry(t *testing.T) {
	st := newStore(t)
	m := newMailer(t, st)
	ctx := context.Background()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m.SetClock(clock)
	ts, addr, pool := startServer(t, true, false)
	ts.reply = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	h := viaSmarthost(addr, courier.TLSRequired, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	s := NewSender(st, h, SenderConfig{Backoff: time.Minute, Lifetime: time.Hour}, nil, nil)
	s.SetClock(clock)
	if err := m.Send(ctx, "ada@example.org", "reset_password", map[string]string{"url": "u"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RunOnce(ctx); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d %v", n, err)
	}
	l, _ := st.ListMail(ctx, 0)
	if l[0].Attempts != 1 || !l[0].SentAt.IsZero() || l[0].Failed || !l[0].NextAttempt.After(now) || !strings.Contains(l[0].LastError, "451") {
		t.Fatalf("after a 4xx: %+v", l[0])
	}
	if n, _ := s.RunOnce(ctx); n != 0 {
		t.Fatal("retried before its time")
	}
	now = now.Add(2 * time.Minute)
	ts.mu.Lock()
	ts.reply = nil
	ts.mu.Unlock()
	if n, _ := s.RunOnce(ctx); n != 1 {
		t.Fatal("not retried")
	}
	l, _ = st.ListMail(ctx, 0)
	if l[0].SentAt.IsZero() || len(ts.msgs) != 1 {
		t.Fatalf("not sent: %+v", l[0])
	}
	// A permanent failure, and a temporary one past the lifetime, give up.
	ts.mu.Lock()
	ts.reply = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	ts.mu.Unlock()
	m.Send(ctx, "bob@example.org", "reset_password", nil)
	s.RunOnce(ctx)
	l, _ = st.ListMail(ctx, 1)
	if !l[0].Failed {
		t.Fatalf("5xx not failed: %+v", l[0])
	}
	ts.mu.Lock()
	ts.reply = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "busy"}
	ts.mu.Unlock()
	m.Send(ctx, "carol@example.org", "reset_password", nil)
	now = now.Add(2 * time.Hour)
	s.RunOnce(ctx)
	l, _ = st.ListMail(ctx, 1)
	if !l[0].Failed {
		t.Fatalf("past lifetime not failed: %+v", l[0])
	}
}

func TestDevOutbox(t *testing.T) {
	st := newStore(t)
	m := newMailer(t, st)
	s := NewSender(st, DevOutbox{}, SenderConfig{Poll: 20 * time.Millisecond}, nil, nil)
	m.OnQueued(s.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	m.Send(ctx, "ada@example.org", "verify_email", map[string]string{"url": "https://x/verify?token=t"})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		l, _ := st.ListMail(ctx, 0)
		if len(l) == 1 && !l[0].SentAt.IsZero() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("dev outbox mail not marked sent")
}

func TestSmtpSink(t *testing.T) {
	testlib.Need(t, "smtp-sink")
	sink := testlib.StartSink(t, 10)
	addr, dir := sink.Addr, sink.Dir
	st := newStore(t)
	m := newMailer(t, st)
	h := viaSmarthost(addr, courier.TLSOpportunistic, nil)
	s := NewSender(st, h, SenderConfig{}, nil, nil)
	ctx := context.Background()
	if err := m.Send(ctx, "ada@example.org", "verify_email", map[string]string{"url": "https://id.example.org/verify?token=tok123", "username": "ada"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RunOnce(ctx); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	l, _ := st.ListMail(ctx, 0)
	if l[0].SentAt.IsZero() {
		t.Fatalf("not sent: %+v", l[0])
	}
	var files []string
	for i := 0; i < 100 && len(files) == 0; i++ {
		files, _ = filepath.Glob(dir + "/*")
		time.Sleep(20 * time.Millisecond)
	}
	if len(files) != 1 {
		t.Fatalf("sink files %v", files)
	}
	b, _ := os.ReadFile(files[0])
	for _, want := range []string{"noreply@id.example.org", "ada@example.org", "Subject: Confirm your email address for Example ID", "tok123"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("sink dump lacks %q:\n%s", want, b)
		}
	}
}
