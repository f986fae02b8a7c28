package forward

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const vd = "id.example.test"

// fakeDir is the directory: username → real email; locked and unverified
// accounts are simply absent from users, as the real Directory reports them.
type fakeDir struct {
	users map[string]string
	fail  atomic.Bool
}

func (d *fakeDir) Lookup(_ context.Context, local string) (string, bool, error) {
	if d.fail.Load() {
		return "", false, errors.New("store unavailable")
	}
	e, ok := d.users[local]
	return e, ok, nil
}

// fakeSRS reverses SRS0=good…@domain into orig@sender.test and refuses
// anything else.
type fakeSRS struct{}

func (fakeSRS) Reverse(addr string) (string, error) {
	if strings.HasPrefix(strings.ToLower(addr), "srs0=good=") {
		return "orig@sender.test", nil
	}
	return "", errors.New("srs: bad hash")
}

type put struct {
	from string
	to   []string
	data []byte
}

type memQueue struct {
	mu   sync.Mutex
	puts []put
	fail bool
}

func (q *memQueue) Put(_ context.Context, from string, to, original []string, data []byte) (string, error) {
	if len(original) != len(to) {
		return "", errors.New("original and to differ in length")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail {
		return "", errors.New("disk full")
	}
	q.puts = append(q.puts, put{from, append([]string(nil), to...), append([]byte(nil), data...)})
	return "Q" + string(rune('0'+len(q.puts))), nil
}

func (q *memQueue) all() []put {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]put(nil), q.puts...)
}

type env struct {
	srv   *Server
	addr  string
	dir   *fakeDir
	queue *memQueue
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loopback allows the test client's own address.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// start runs a server with the base config changed by mod.
func start(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	cfg := Config{
		Hostname:        "mx.id.example.test",
		VirtualDomain:   vd,
		OperatorAddress: "ops@operator.test",
	}
	if mod != nil {
		mod(&cfg)
	}
	e := &env{
		dir: &fakeDir{users: map[string]string{
			"john":    "john.real@gmail.test",
			"mary.k":  "mary@outlook.test",
			"SRS0":    "never@used.test",
			"support": "not-the-operator@used.test",
		}},
		queue: &memQueue{},
		logs:  &syncBuffer{},
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg, e.dir, fakeSRS{}, e.queue, log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	e.srv, e.addr = srv, l.Addr().String()
	return e
}

// rawClient speaks SMTP line by line, for what net/smtp will not send.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *textproto.Reader
	w    *bufio.Writer
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, conn: c, r: textproto.NewReader(bufio.NewReader(c)), w: bufio.NewWriter(c)}
	rc.expect(220)
	return rc
}

// send writes s as is (the caller writes the CRLFs).
func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := c.w.WriteString(s); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// reply reads one (possibly multi-line) reply.
func (c *rawClient) reply() (int, string) {
	c.t.Helper()
	code, msg, err := c.r.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

// cmd sends one command line and returns the reply.
func (c *rawClient) cmd(line string) (int, string) {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.reply()
}

func (c *rawClient) expect(code int) string {
	c.t.Helper()
	got, msg := c.reply()
	if got != code {
		c.t.Fatalf("reply %d %s, want %d", got, msg, code)
	}
	return msg
}

func (c *rawClient) expectCmd(line string, code int) string {
	c.t.Helper()
	got, msg := c.cmd(line)
	if got != code {
		c.t.Fatalf("%q: reply %d %s, want %d", line, got, msg, code)
	}
	return msg
}

// selfSigned returns a server TLS config and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mx.id.example.test"},
		DNSNames:     []string{"mx.id.example.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// afterReceived returns data without our Received header, checking that it
// starts with one.
func afterReceived(t *testing.T, data []byte) (hdr string, rest []byte) {
	t.Helper()
	if !bytes.HasPrefix(data, []byte("Received: from ")) {
		t.Fatalf("queued data does not start with our Received header:\n%q", data[:min(len(data), 200)])
	}
	// Our header is one field: the first line that does not start a
	// continuation ends it.
	i := 0
	for {
		j := bytes.Index(data[i:], []byte("\r\n"))
		if j < 0 {
			t.Fatal("unterminated Received header")
		}
		i += j + 2
		if i >= len(data) || (data[i] != ' ' && data[i] != '\t') {
			return string(data[:i]), data[i:]
		}
	}
}

func net_Dial(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
func bufioWriter(c net.Conn) *bufio.Writer { return bufio.NewWriter(c) }

func tlsClient(pool *x509.CertPool) *tls.Config {
	return &tls.Config{ServerName: "mx.id.example.test", RootCAs: pool}
}
