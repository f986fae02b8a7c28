package mail

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// Slapd is a private OpenLDAP server on a free loopback port.
type Slapd struct {
	URL    string
	Suffix string
	RootDN string
	RootPW string
}

// StartSlapd runs slapd (back_mdb) for suffix dc=openmrs,dc=org with the
// layout of the legacy OpenMRS ID directory (ou=users).
func StartSlapd(t TB) *Slapd {
	t.Helper()
	slapd := mustProgram(t, "slapd")
	dir := PublicDir(t, "slapd", 0o755)
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	s := &Slapd{Suffix: "dc=openmrs,dc=org", RootDN: "cn=admin,dc=openmrs,dc=org", RootPW: "secret"}
	addr := FreeAddr(t)
	s.URL = "ldap://" + addr
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/misc.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile %[1]s/slapd.pid
database mdb
maxsize 1073741824
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
index uid eq
index objectClass eq
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
`, dir, s.Suffix, s.RootDN, s.RootPW)
	cf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	testlib.StartDaemon(t, exec.Command(slapd, "-f", cf, "-h", s.URL+"/", "-d", "0"), addr, "")
	return s
}

// Add loads LDIF with ldapadd as the root DN.
func (s *Slapd) Add(t TB, ldif string) {
	t.Helper()
	ldapadd := mustProgram(t, "ldapadd")
	cmd := exec.Command(ldapadd, "-x", "-H", s.URL, "-D", s.RootDN, "-w", s.RootPW)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldapadd: %v\n%s", err, out)
	}
}

// Postsrsd is a running postsrsd (tcp_table forward and reverse maps) with
// its own secret.
type Postsrsd struct {
	Forward, Reverse string // host:port of the tcp_table maps
	Domain           string
}

// StartPostsrsd runs postsrsd for domain with a fresh secret.
func StartPostsrsd(t TB, domain string) *Postsrsd {
	t.Helper()
	bin := mustProgram(t, "postsrsd")
	dir := PublicDir(t, "postsrsd", 0o755)
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("a secret that idbridge does not know\n"), 0o644); err != nil {
		t.Fatalf("%v", err)
	}
	p := &Postsrsd{Forward: FreeAddr(t), Reverse: FreeAddr(t), Domain: domain}
	args := []string{"-s", secret, "-d", domain, "-l", "127.0.0.1",
		"-f", fmt.Sprint(Port(p.Forward)), "-r", fmt.Sprint(Port(p.Reverse))}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	testlib.StartDaemon(t, exec.Command(bin, args...), p.Forward, "")
	return p
}

// Encode asks postsrsd's forward map for the SRS address of addr, speaking
// tcp_table(5) ("get KEY" / "200 VALUE").
func (p *Postsrsd) Encode(t TB, addr string) string {
	t.Helper()
	return tcpTableGet(t, p.Forward, addr)
}

// Decode asks postsrsd's reverse map.
func (p *Postsrsd) Decode(t TB, addr string) string {
	t.Helper()
	return tcpTableGet(t, p.Reverse, addr)
}

func tcpTableGet(t TB, server, key string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", server, 5*time.Second)
	if err != nil {
		t.Fatalf("tcp_table %s: %v", server, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "get %s\n", tcpTableQuote(key))
	buf := make([]byte, 1024)
	n, _ := c.Read(buf)
	reply := strings.TrimSpace(string(buf[:n]))
	code, val, _ := strings.Cut(reply, " ")
	if code != "200" {
		t.Fatalf("tcp_table %s get %s: %q", server, key, reply)
	}
	return tcpTableUnquote(val)
}

func tcpTableQuote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '%' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func tcpTableUnquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02X", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// DKIMResult is dkimpy's verdict on one DKIM-Signature, top first.
type DKIMResult struct {
	Domain   string `json:"d"`
	Selector string `json:"s"`
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
}

const dkimpyVerify = `
import sys, json, dkim
from dkim.util import parse_tag_value
msg = open(sys.argv[1], 'rb').read()
txt = json.load(open(sys.argv[2]))
def dnsfunc(name, timeout=5):
    n = name.decode() if isinstance(name, bytes) else name
    v = txt.get(n.rstrip('.').lower())
    return v.encode() if v is not None else None
d = dkim.DKIM(msg)
headers, _ = dkim.rfc822_parse(msg)
sigs = [v for k, v in headers if k.lower() == b'dkim-signature']
out = []
for i, s in enumerate(sigs):
    tags = parse_tag_value(s)
    r = {"d": tags.get(b'd', b'').decode(), "s": tags.get(b's', b'').decode(), "ok": False, "error": ""}
    try:
        r["ok"] = bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc))
    except Exception as e:
        r["error"] = repr(e)
    out.append(r)
print(json.dumps(out))
`

// DKIMVerify verifies every DKIM-Signature of msg with dkimpy
// (/usr/bin/python3 -c 'import dkim'), answering its key lookups from txt
// (owner name → TXT value, e.g. "s1._domainkey.atlassian.net").
func DKIMVerify(t TB, msg []byte, txt map[string]string) []DKIMResult {
	t.Helper()
	dir := PublicDir(t, "dkim", 0o700)
	mf, tf := filepath.Join(dir, "msg.eml"), filepath.Join(dir, "txt.json")
	tj, _ := json.Marshal(lowerKeys(txt))
	if err := os.WriteFile(mf, msg, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(tf, tj, 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	out, err := exec.Command("/usr/bin/python3", "-c", dkimpyVerify, mf, tf).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	var res []DKIMResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("dkimpy output %q: %v", out, err)
	}
	return res
}

func lowerKeys(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[strings.TrimSuffix(strings.ToLower(k), ".")] = v
	}
	return out
}

// HaveDkimpy reports whether /usr/bin/python3 can import dkim.
func HaveDkimpy() bool {
	return exec.Command("/usr/bin/python3", "-c", "import dkim").Run() == nil
}
