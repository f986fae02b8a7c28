package forward

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

// runSwaks runs the real swaks client and returns its exit status and
// transcript.
func runSwaks(t *testing.T, args ...string) (int, string) {
	t.Helper()
	swaks := testlib.Need(t, "swaks")
	out, err := exec.Command(swaks, append([]string{"--helo", "client.test", "--timeout", "30"}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("swaks: %v", err)
	return 0, ""
}

// TestSwaksRelayMatrix drives the open-relay matrix with swaks, which sends
// each address exactly as written. Exit 24 is "no RCPT accepted", 23 "MAIL
// refused".
func TestSwaksRelayMatrix(t *testing.T) {
	testlib.Need(t, "swaks")
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	refused := []struct{ rcpt, reply string }{
		{"john@gmail.test", "550 5.7.1"},
		{"john%gmail.test@" + vd, "553 5.1.3"},
		{"gmail.test!john@" + vd, "553 5.1.3"},
		{`"john@gmail.test"@` + vd, "553 5.1.3"},
		{"john@[127.0.0.1]", "553 5.1.3"},
		{"john@" + vd + ".", "553 5.1.3"},
		{"john@@" + vd, "553 5.1.3"},
		{"@" + vd + ":john@gmail.test", "553 5.1.3"},
		{"@relay.test:john@" + vd, "553 5.1.3"},
		{`"john"@` + vd, "553 5.1.3"},
		{"locked@" + vd, "550 5.1.1"},
		{"nobody@" + vd, "550 5.1.1"},
	}
	for _, r := range refused {
		code, out := runSwaks(t, "--server", e.addr, "--from", "a@x.test", "--to", r.rcpt)
		if code != 24 || !strings.Contains(out, "<** "+r.reply) {
			t.Errorf("%s: swaks exit %d, want 24 and %q\n%s", r.rcpt, code, r.reply, out)
		}
	}
	if code, out := runSwaks(t, "--server", e.addr, "--from", "a@x.test", "--to", "john@ID.Example.Test", "--pipeline"); code != 0 {
		t.Errorf("member with pipelining: exit %d\n%s", code, out)
	}
	q := e.queue.all()
	if len(q) != 1 || q[0].to[0] != "john.real@gmail.test" {
		t.Errorf("queued %+v", q)
	}
}

func TestSwaksDisallowedSender(t *testing.T) {
	testlib.Need(t, "swaks")
	e := start(t, func(c *Config) { c.AllowedNetworks = nil })
	code, out := runSwaks(t, "--server", e.addr, "--from", "a@x.test", "--to", "john@"+vd)
	if code != 23 || !strings.Contains(out, "<** 550 5.7.1") {
		t.Errorf("exit %d, want 23 and 550 5.7.1\n%s", code, out)
	}
	// A bounce from the same network to a member is refused at RCPT; one to
	// postmaster is taken.
	code, out = runSwaks(t, "--server", e.addr, "--from", "<>", "--to", "john@"+vd)
	if code != 24 || !strings.Contains(out, "<** 550 5.7.1") {
		t.Errorf("bounce to a member: exit %d\n%s", code, out)
	}
	if code, out := runSwaks(t, "--server", e.addr, "--from", "<>", "--to", "postmaster@"+vd); code != 0 {
		t.Errorf("bounce to postmaster: exit %d\n%s", code, out)
	}
}

func TestSwaksSTARTTLS(t *testing.T) {
	testlib.Need(t, "swaks")
	cfg, _ := selfSigned(t)
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.TLS = cfg
	})
	code, out := runSwaks(t, "--server", e.addr, "--tls", "--from", "a@x.test", "--to", "john@"+vd)
	if code == 10 && strings.Contains(out, "Net::SSLeay") {
		// swaks needs libnet-ssleay-perl for TLS.
		if os.Getenv("CI") != "" {
			t.Fatalf("swaks has no TLS: install libnet-ssleay-perl\n%s", out)
		}
		t.Skip("swaks has no TLS: install libnet-ssleay-perl")
	}
	if code != 0 {
		t.Fatalf("swaks --tls: exit %d\n%s", code, out)
	}
	q := e.queue.all()
	if len(q) != 1 {
		t.Fatalf("%d queued", len(q))
	}
	if hdr, _ := afterReceived(t, q[0].data); !strings.Contains(hdr, "with ESMTPS") {
		t.Errorf("Received: %q", hdr)
	}
}
