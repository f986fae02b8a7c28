package srs

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// postsrsd runs a private postsrsd with the given secret file lines on free
// loopback ports and returns a lookup function per direction, through
// Postfix's own tcp_table client (postmap -q KEY tcp:HOST:PORT).
type postsrsd struct {
	t                *testing.T
	postmap, cfgDir  string
	fwdAddr, revAddr string
}

func startPostsrsd(t *testing.T, domain string, secrets ...string) *postsrsd {
	t.Helper()
	bin := testlib.Need(t, "postsrsd")
	postmap := testlib.Need(t, "postmap")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(strings.Join(secrets, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fwd, rev := testlib.FreePort(t), testlib.FreePort(t)
	_, fport, _ := net.SplitHostPort(fwd)
	_, rport, _ := net.SplitHostPort(rev)
	args := []string{"-s", secretFile, "-d", domain, "-l", "127.0.0.1", "-4", "-f", fport, "-r", rport}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	d := testlib.StartDaemon(t, exec.Command(bin, args...), fwd, "")
	d.WaitListening(t, rev)
	return &postsrsd{t: t, postmap: postmap, cfgDir: dir, fwdAddr: fwd, revAddr: rev}
}

// query returns postmap's answer and whether the key was found.
func (p *postsrsd) query(addr, key string) (string, bool) {
	p.t.Helper()
	out, err := exec.Command(p.postmap, "-c", p.cfgDir, "-q", key, "tcp:"+addr).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return "", false
		}
		p.t.Fatalf("postmap -q %s tcp:%s: %v", key, addr, err)
	}
	return strings.TrimSpace(string(out)), true
}

func TestPostsrsdInterop(t *testing.T) {
	const domain = "fwd.example.org"
	p := startPostsrsd(t, domain, "interop-secret", "retired-secret")
	ours, err := New([]byte("interop-secret"), domain)
	if err != nil {
		t.Fatal(err)
	}
	senders := []string{
		"alice@origin.test",
		"Bob.Smith+tag@Example.COM",
		"jira@atlassian.net",
		"SRS0=abcd=TT=origin.test=alice@other.test",
		"SRS1=XXXX=a.test==abcd=TT=origin.test=alice@b.test",
	}
	for _, sender := range senders {
		t.Run(sender, func(t *testing.T) {
			// Forward: byte-identical to postsrsd (computed on both sides of
			// the postsrsd call, in case a day boundary passes).
			before := mustForward(t, ours, sender)
			theirs, ok := p.query(p.fwdAddr, sender)
			after := mustForward(t, ours, sender)
			if !ok || (theirs != before && theirs != after) {
				t.Fatalf("postsrsd forward %q = %q, ours %q", sender, theirs, before)
			}
			// postsrsd decodes ours, also lowercased (some MTAs fold case).
			for _, a := range []string{before, strings.ToLower(before)} {
				got, ok := p.query(p.revAddr, a)
				want, err := ours.Reverse(a)
				if err != nil {
					t.Fatalf("our Reverse(%q): %v", a, err)
				}
				if !ok || got != want {
					t.Fatalf("postsrsd reverse %q = %q (found %v), ours %q", a, got, ok, want)
				}
			}
			// We decode postsrsd's.
			if got, err := ours.Reverse(theirs); err != nil || !strings.EqualFold(got, mustReverseRef(sender)) {
				t.Fatalf("our Reverse(%q) = %q, %v", theirs, got, err)
			}
		})
	}

	// A forged hash: refused by both.
	forged := strings.Replace(mustForward(t, ours, "alice@origin.test"), "=origin.test=", "=evil.test=", 1)
	if got, ok := p.query(p.revAddr, forged); ok {
		t.Errorf("postsrsd decoded forged %q to %q", forged, got)
	}
	if _, err := ours.Reverse(forged); err == nil {
		t.Errorf("we decoded forged %q", forged)
	}

	// Secret rotation: postsrsd verifies with every line of the file, signs
	// with the first; so do we with WithOldSecrets.
	retired, _ := New([]byte("retired-secret"), domain)
	old := mustForward(t, retired, "dave@origin.test")
	if got, ok := p.query(p.revAddr, old); !ok || got != "dave@origin.test" {
		t.Errorf("postsrsd reverse of a retired-secret address = %q, %v", got, ok)
	}
	rotated, _ := New([]byte("interop-secret"), domain, WithOldSecrets([]byte("retired-secret")))
	if got, err := rotated.Reverse(old); err != nil || got != "dave@origin.test" {
		t.Errorf("our reverse of a retired-secret address = %q, %v", got, err)
	}

	// An expired address made by postsrsd's algorithm 30 days ago: refused by both.
	past, _ := New([]byte("interop-secret"), domain,
		WithClock(func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }))
	expired := mustForward(t, past, "erin@origin.test")
	if got, ok := p.query(p.revAddr, expired); ok {
		t.Errorf("postsrsd decoded expired %q to %q", expired, got)
	}
	if _, err := ours.Reverse(expired); err == nil {
		t.Errorf("we decoded expired %q", expired)
	}
}

// mustReverseRef is what reversing the forward of sender yields: the
// sender itself for a plain address, the first hop's SRS0 for SRS0/SRS1.
func mustReverseRef(sender string) string {
	switch {
	case strings.HasPrefix(sender, "SRS0="):
		return sender
	case strings.HasPrefix(sender, "SRS1="):
		// SRS1=HASH=hop==rest@x -> SRS0=rest@hop
		rest := sender[5:]
		rest = rest[strings.IndexByte(rest, '=')+1:]
		hop, srsUser, _ := strings.Cut(rest, "=")
		return "SRS0" + srsUser[:strings.LastIndexByte(srsUser, '@')] + "@" + hop
	}
	return sender
}
