package forward

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/idbridge/idbridge/internal/resolver"
	"github.com/idbridge/idbridge/internal/testlib"
	"github.com/idbridge/idbridge/internal/testlib/dnstest"
)

type dkimKey struct {
	key *rsa.PrivateKey
	txt string // the DNS TXT record
}

// The keys are made once per test binary: RSA generation is slow under -race.
var (
	goodKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
	evilKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })
)

func newDKIMKey(t *testing.T, gen func() (*rsa.PrivateKey, error)) dkimKey {
	t.Helper()
	key, err := gen()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return dkimKey{key, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}
}

func sign(t *testing.T, k dkimKey, domain, msg string) string {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, strings.NewReader(msg), &dkim.SignOptions{
		Domain: domain, Selector: "sel", Signer: k.key,
		HeaderKeys: []string{"From", "To", "Subject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// authEnv is a forwarder that allows no network, only the domain
// atlassian.test, with its DNS served by dnstest.
func authEnv(t *testing.T, good, evil dkimKey) (*env, *dnstest.Server) {
	t.Helper()
	dns := dnstest.Start(t, dnstest.Zone{
		"atlassian.test":                       {TXT: []string{"v=spf1 ip4:127.0.0.1 -all"}},
		"bad.atlassian.test":                   {TXT: []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		"temp.atlassian.test":                  {Fail: true},
		"evilatlassian.test":                   {TXT: []string{"v=spf1 +all"}},
		"sel._domainkey.atlassian.test":        {TXT: []string{good.txt}},
		"sel._domainkey.e.atlassian.test":      {TXT: []string{good.txt}},
		"sel._domainkey.evil.test":             {TXT: []string{evil.txt}},
		"sel._domainkey.broken.atlassian.test": {Fail: true},
	})
	res, err := resolver.New([]string{dns.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *Config) {
		c.AllowedDomains = []string{"Atlassian.test"}
		c.Resolver = res
	})
	return e, dns
}

func TestSenderAuthentication(t *testing.T) {
	good, evil := newDKIMKey(t, goodKey), newDKIMKey(t, evilKey)
	e, _ := authEnv(t, good, evil)
	msg := "From: Jira <jira@e.atlassian.test>\r\nTo: john@" + vd + "\r\nSubject: [JIRA] ABC-1\r\n\r\nYou were mentioned.\r\n"
	rcpt := []string{"john@" + vd}

	tests := []struct {
		name  string
		from  string
		msg   string
		stage string // "" accepted, else where refused
		code  int
		by    string
	}{
		{"spf pass", "bounces@atlassian.test", msg, "", 250, "spf"},
		{"spf pass, MAIL FROM in capitals", "bounces@ATLASSIAN.TEST", msg, "", 250, "spf"},
		{"spf fail, no signature", "x@bad.atlassian.test", msg, "end", 550, ""},
		{"spf fail, dkim pass", "x@bad.atlassian.test", sign(t, good, "atlassian.test", msg), "", 250, "dkim"},
		{"spf temperror, no signature", "x@temp.atlassian.test", msg, "end", 451, ""},
		{"spf temperror, dkim pass", "x@temp.atlassian.test", sign(t, good, "atlassian.test", msg), "", 250, "dkim"},
		{"other domain, dkim pass of a subdomain", "x@gmail.test", sign(t, good, "e.atlassian.test", msg), "", 250, "dkim"},
		{"spf pass of a lookalike domain", "x@evilatlassian.test", msg, "end", 550, ""},
		{"dkim pass of another domain", "x@evil.test", sign(t, evil, "evil.test", msg), "end", 550, ""},
		{"dkim of an allowed domain with the wrong key", "x@evil.test", sign(t, evil, "atlassian.test", msg), "end", 550, ""},
		{"dkim pass, body changed", "x@gmail.test", strings.Replace(sign(t, good, "atlassian.test", msg), "mentioned", "phished", 1), "end", 550, ""},
		{"dkim key absent", "x@gmail.test", sign(t, good, "nokey.atlassian.test", msg), "end", 550, ""},
		{"dkim key lookup fails", "x@gmail.test", sign(t, good, "broken.atlassian.test", msg), "end", 451, ""},
	}
	for _, tt := range tests {
		n := len(e.queue.all())
		stage, code, text := transaction(t, e.addr, tt.from, rcpt, tt.msg)
		if stage != tt.stage || code != tt.code {
			t.Errorf("%s: %s %d %s, want %q %d", tt.name, stage, code, text, tt.stage, tt.code)
			continue
		}
		if code == 550 && !strings.HasPrefix(text, "5.7.1") {
			t.Errorf("%s: %d %s, want 5.7.1", tt.name, code, text)
		}
		q := e.queue.all()
		if tt.stage == "" {
			if len(q) != n+1 {
				t.Errorf("%s: not queued", tt.name)
				continue
			}
			if _, rest := afterReceived(t, q[n].data); string(rest) != tt.msg {
				t.Errorf("%s: message changed", tt.name)
			}
			if !strings.Contains(e.logs.String(), `"allowed_by":"`+tt.by+`"`) {
				t.Errorf("%s: log lacks allowed_by %s", tt.name, tt.by)
			}
		} else if len(q) != n {
			t.Errorf("%s: queued", tt.name)
		}
	}
}

// TestDKIMDecidedAtEndOfData: a sender that only DKIM could allow gets
// through MAIL and RCPT, and is refused after the data.
func TestDKIMDecidedAtEndOfData(t *testing.T) {
	e, _ := authEnv(t, newDKIMKey(t, goodKey), newDKIMKey(t, evilKey))
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO c.test", 250)
	rc.expectCmd("MAIL FROM:<x@gmail.test>", 250)
	rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
	// Unknown users are still refused at RCPT.
	rc.expectCmd("RCPT TO:<ghost@"+vd+">", 550)
	rc.expectCmd("DATA", 354)
	rc.send(simpleMsg + ".\r\n")
	if msg := rc.expect(550); !strings.HasPrefix(msg, "5.7.1") {
		t.Errorf("end of data: %s", msg)
	}
	if got := e.srv.Counts().Refused[ReasonDKIM]; got != 1 {
		t.Errorf("dkim refusals counted %d", got)
	}
}

// TestDKIMWithDkimpy signs with dkimpy (a second, independent DKIM
// implementation), sends through swaks, and checks that dkimpy still
// verifies the forwarded message with our Received header on top.
func TestDKIMWithDkimpy(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s has no dkim module; run scripts/install-peers", py)
		}
		t.Skipf("%s has no dkim module; run scripts/install-peers", py)
	}
	swaks := testlib.Need(t, "swaks")
	good := newDKIMKey(t, goodKey)
	e, _ := authEnv(t, good, newDKIMKey(t, evilKey))

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(good.key)})
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	msg := "From: Confluence <confluence@e.atlassian.test>\r\nTo: john@" + vd + "\r\nSubject: Page updated\r\nMessage-ID: <1@e.atlassian.test>\r\n\r\nA page was updated.\r\n.dot line\r\n"
	signCmd := exec.Command(py, "-c", `
import sys, dkim
msg = sys.stdin.buffer.read()
sig = dkim.sign(msg, b"sel", b"e.atlassian.test", open(sys.argv[1], "rb").read(),
                include_headers=[b"from", b"to", b"subject", b"message-id"])
sys.stdout.buffer.write(sig + msg)
`, keyFile)
	signCmd.Stdin = strings.NewReader(msg)
	signed, err := signCmd.Output()
	if err != nil {
		t.Fatalf("dkimpy sign: %v", err)
	}
	msgFile := filepath.Join(dir, "msg.eml")
	if err := os.WriteFile(msgFile, signed, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(swaks, "--server", e.addr, "--helo", "mail.e.atlassian.test",
		"--from", "x@bad.atlassian.test", "--to", "john@"+vd, "--data", "@"+msgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	q := e.queue.all()
	if len(q) != 1 {
		t.Fatalf("%d queued\n%s", len(q), out)
	}
	if !strings.Contains(e.logs.String(), `"allowed_by":"dkim"`) {
		t.Error("not allowed by dkim")
	}
	verify := exec.Command(py, "-c", `
import sys, dkim
txt = sys.argv[1].encode()
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: txt)
sys.exit(0 if ok else 1)
`, good.txt)
	verify.Stdin = bytes.NewReader(q[0].data)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("dkimpy does not verify the queued message: %v\n%s", err, out)
	}
}
