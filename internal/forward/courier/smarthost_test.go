package courier

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
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testServer is a go-smtp server with STARTTLS (or implicit TLS) and AUTH
// PLAIN, recording what each session did.
type testServer struct {
	addr string
	mu   sync.Mutex
	log  []sessionLog
}

type sessionLog struct {
	tls, authed, authOverTLS bool
	from, to                 string
	data                     []byte
}

type srvSession struct {
	srv  *testServer
	conn *smtp.Conn
	cur  sessionLog
}

func (s *srvSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *srvSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != "idbridge" || pass != "s3cret" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		_, s.cur.authOverTLS = s.conn.TLSConnectionState()
		s.cur.authed = true
		return nil
	}), nil
}
func (s *srvSession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *srvSession) Rcpt(to string, _ *smtp.RcptOptions) error   { s.cur.to = to; return nil }
func (s *srvSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.log = append(s.srv.log, s.cur)
	s.srv.mu.Unlock()
	return nil
}
func (s *srvSession) Reset()        {}
func (s *srvSession) Logout() error { return nil }

func (ts *testServer) sessions() []sessionLog {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]sessionLog(nil), ts.log...)
}

// selfSigned returns a certificate for smarthost.test and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smarthost.test"},
		DNSNames: []string{"smarthost.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
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

func startServer(t *testing.T, listenIP string, cert tls.Certificate, startTLS, implicit bool) *testServer {
	t.Helper()
	ts := &testServer{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &srvSession{srv: ts, conn: c}, nil
	}))
	srv.Domain = "smarthost.test"
	srv.AllowInsecureAuth = true // the client must be the one that refuses
	if startTLS {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", net.JoinHostPort(listenIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	ts.addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ts
}

func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

func TestSmarthostTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	trusted := &tls.Config{RootCAs: pool, ServerName: "smarthost.test"}
	untrusted := &tls.Config{ServerName: "smarthost.test"}
	tests := []struct {
		name               string
		listen             string
		startTLS, implicit bool
		mode               TLSMode
		tlsCfg             *tls.Config
		user, pass         string
		delivered, useTLS  bool
		stage              string // where a refusal happens
	}{
		{"required with AUTH", "127.0.0.1", true, false, TLSRequired, trusted, "idbridge", "s3cret", true, true, ""},
		{"implicit with AUTH", "127.0.0.1", false, true, TLSImplicit, trusted, "idbridge", "s3cret", true, true, ""},
		{"opportunistic uses offered TLS", "127.0.0.1", true, false, TLSOpportunistic, trusted, "idbridge", "s3cret", true, true, ""},
		{"opportunistic falls back on a bad certificate", "127.0.0.1", true, false, TLSOpportunistic, untrusted, "", "", true, false, ""},
		{"required refuses an untrusted certificate", "127.0.0.1", true, false, TLSRequired, untrusted, "idbridge", "s3cret", false, false, "STARTTLS"},
		{"required refuses a server without STARTTLS", "127.0.0.1", false, false, TLSRequired, trusted, "", "", false, false, "STARTTLS"},
		{"none: AUTH in clear to loopback", "127.0.0.1", true, false, TLSNone, trusted, "idbridge", "s3cret", true, false, ""},
		{"none: no AUTH in clear to another host", nonLoopbackIP(), true, false, TLSNone, trusted, "idbridge", "s3cret", false, false, "AUTH"},
		{"opportunistic: no AUTH in clear to another host", nonLoopbackIP(), false, false, TLSOpportunistic, trusted, "idbridge", "s3cret", false, false, "AUTH"},
		{"wrong password is temporary", "127.0.0.1", true, false, TLSRequired, trusted, "idbridge", "wrong", false, true, "AUTH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.listen == "" {
				t.Skip("no non-loopback IPv4 address on this machine")
			}
			ts := startServer(t, tt.listen, cert, tt.startTLS, tt.implicit)
			h := &Smarthost{Address: ts.addr, TLS: tt.mode, TLSConfig: tt.tlsCfg, Username: tt.user, Password: tt.pass, Hostname: "mx.id.test"}
			err, perm := h.Deliver(context.Background(), "a@origin.test", "r@dest.test", []byte(testMsg))
			if perm {
				t.Fatalf("a smarthost set-up problem was permanent: %v", err)
			}
			got := ts.sessions()
			if !tt.delivered {
				if err == nil || len(got) != 0 {
					t.Fatalf("Deliver = %v, server got %d messages; want a refusal", err, len(got))
				}
				var e *Error
				if !errors.As(err, &e) || e.Stage != tt.stage {
					t.Fatalf("error %v: want a refusal at %s", err, tt.stage)
				}
				return
			}
			if err != nil || len(got) != 1 {
				t.Fatalf("Deliver = %v, server got %d messages", err, len(got))
			}
			s := got[0]
			if s.tls != tt.useTLS || s.authed != (tt.user != "") || (s.authed && s.authOverTLS != tt.useTLS) {
				t.Fatalf("session %+v", s)
			}
			if s.from != "a@origin.test" || s.to != "r@dest.test" || !bytes.Equal(s.data, []byte(testMsg)) {
				t.Fatalf("server received from %q to %q data %q", s.from, s.to, s.data)
			}
		})
	}
}

func TestDirectStartTLS(t *testing.T) {
	cert, _ := selfSigned(t)
	ts := startServer(t, "127.0.0.1", cert, true, false)
	host, port, _ := net.SplitHostPort(ts.addr)
	d := &Direct{Resolver: &fakeDNS{
		mx:    map[string][]*net.MX{"dest.test": {{Host: "mx.dest.test.", Pref: 10}}},
		hosts: map[string][]string{"mx.dest.test": {host}},
	}, Port: port, Hostname: "mx.id.test"}
	if err, _ := d.Deliver(context.Background(), "a@origin.test", "r@dest.test", []byte(testMsg)); err != nil {
		t.Fatal(err)
	}
	if s := ts.sessions(); len(s) != 1 || !s[0].tls || !bytes.Equal(s[0].data, []byte(testMsg)) {
		t.Fatalf("direct delivery did not use the offered STARTTLS: %+v", s)
	}
}
