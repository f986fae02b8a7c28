package courier

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/idbridge/idbridge/internal/forward/srs"
)

func rsaKey(t *testing.T) (*rsa.PrivateKey, string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return k, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
}

// The original message without any signature; the sender signs it.
const plainMsg = "From: Jira <jira@atlassian.test>\r\nTo: john@id.test\r\nSubject: [JIRA] (TRUNK-1) caf\xc3\xa9\r\n" +
	"Date: Fri, 04 Dec 2026 20:00:00 +0000\r\nMessage-ID: <m1@atlassian.test>\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n\r\nLine one\r\n.leading dot\r\n  indented  \r\n\r\n8bit: \xe2\x82\xac\r\n"

func TestDKIMSignerGo(t *testing.T) {
	key, txt := rsaKey(t)
	sign, err := NewDKIMSigner("id.test", "idb1", key)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sign([]byte(plainMsg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("DKIM-Signature: ")) || !bytes.HasSuffix(out, []byte(plainMsg)) {
		t.Fatalf("signed message is not the original with a header on top:\n%q", out)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(out), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			if name == "idb1._domainkey.id.test" {
				return []string{txt}, nil
			}
			return nil, fmt.Errorf("no TXT for %s", name)
		},
	})
	if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "id.test" {
		t.Fatalf("verify: %v %+v", err, vs)
	}
	if _, err := NewDKIMSigner("", "idb1", key); err == nil {
		t.Error("NewDKIMSigner without a domain succeeded")
	}
}

// dkimpyScript signs (argv: sign MSG KEY DOMAIN SELECTOR) or verifies every
// signature of a message (argv: verify MSG SEL1.DOM1=TXTFILE ...), with dkimpy,
// the independent Python implementation.
const dkimpyScript = `
import sys, dkim
cmd, path = sys.argv[1], sys.argv[2]
msg = open(path, 'rb').read()
if cmd == 'sign':
    key = open(sys.argv[3], 'rb').read()
    sig = dkim.sign(msg, sys.argv[5].encode(), sys.argv[4].encode(), key,
                    canonicalize=(b'relaxed', b'simple'),
                    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
    sys.stdout.buffer.write(sig)
    sys.exit(0)
txt = {}
for a in sys.argv[3:]:
    name, f = a.split('=', 1)
    txt[name] = open(f, 'rb').read()
def dns(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return txt.get(name.rstrip('.'))
d = dkim.DKIM(msg)
n = sum(1 for h in d.headers if h[0].lower() == b'dkim-signature')
def check(i):
    try:
        return d.verify(idx=i, dnsfunc=dns)
    except dkim.ValidationError:
        return False
ok = [check(i) for i in range(n)]
print(n, ' '.join('pass' if x else 'fail' for x in ok))
`

func TestForwardingSRSAndDKIMWithDkimpy(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import dkim").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("dkimpy missing: %v", err)
		}
		t.Skip("python3-dkim is not installed")
	}
	s := startSink(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "d.py")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("d.py", []byte(dkimpyScript))

	// The sender (dkimpy) signs the original.
	senderKey, senderTXT := rsaKey(t)
	senderPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(senderKey)})
	sig, err := exec.Command(python, script, "sign", write("plain.eml", []byte(plainMsg)),
		write("sender.pem", senderPEM), "atlassian.test", "s1").Output()
	if err != nil {
		t.Fatalf("dkimpy sign: %v", err)
	}
	if !bytes.HasPrefix(sig, []byte("DKIM-Signature: ")) || !bytes.HasSuffix(sig, []byte("\r\n")) {
		t.Fatalf("dkimpy signature header %q", sig)
	}
	original := append(sig, plainMsg...)

	// We forward it: SRS envelope sender, our DKIM signature on top.
	ourKey, ourTXT := rsaKey(t)
	sign, err := NewDKIMSigner("id.test", "idb1", ourKey)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := srs.New([]byte("srs-secret"), "id.test")
	if err != nil {
		t.Fatal(err)
	}
	f := &Forwarding{Next: &Smarthost{Address: s.addr, TLS: TLSNone}, SRS: rw, Sign: sign}
	if err, perm := f.Deliver(context.Background(), "jira@atlassian.test", "john.real@gmail.test", original); err != nil {
		t.Fatalf("Deliver: %v (permanent %v)", err, perm)
	}
	m := s.one(t)
	if !strings.HasPrefix(m.mailFrom, "<SRS0=") || !strings.Contains(m.mailFrom, "=atlassian.test=jira@id.test>") {
		t.Fatalf("envelope sender %q is not SRS on id.test", m.mailFrom)
	}
	envFrom := m.mailFrom[1:strings.IndexByte(m.mailFrom, '>')]
	if back, err := rw.Reverse(envFrom); err != nil || back != "jira@atlassian.test" {
		t.Fatalf("SRS address does not reverse: %q %v", back, err)
	}
	if !bytes.HasPrefix(m.data, []byte("DKIM-Signature: ")) {
		t.Fatalf("no DKIM-Signature on top:\n%s", m.data)
	}
	i := bytes.Index(m.data, original)
	if i < 0 {
		t.Fatalf("original message not byte-identical after our header:\n%q", m.data)
	}
	sameMessage(t, m.data[i:], original)

	out, err := exec.Command(python, script, "verify", write("got.eml", m.data),
		"s1._domainkey.atlassian.test="+write("s1.txt", []byte(senderTXT)),
		"idb1._domainkey.id.test="+write("idb1.txt", []byte(ourTXT))).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "2 pass pass" {
		t.Fatalf("dkimpy verify: %v: %s", err, out)
	}
	// The check is real: a changed body fails both.
	tampered := bytes.Replace(m.data, []byte("Line one"), []byte("Line 0ne"), 1)
	out, _ = exec.Command(python, script, "verify", write("bad.eml", tampered),
		"s1._domainkey.atlassian.test="+filepath.Join(dir, "s1.txt"),
		"idb1._domainkey.id.test="+filepath.Join(dir, "idb1.txt")).CombinedOutput()
	if strings.TrimSpace(string(out)) != "2 fail fail" {
		t.Fatalf("dkimpy on a tampered message: %s", out)
	}
}
