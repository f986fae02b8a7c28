package socketmap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// serveVirtual starts the socketmap server on a free port.
func serveVirtual(t *testing.T) string {
	t.Helper()
	s := NewServer(lookup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, l); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// startSink runs smtp-sink keeping messages in the returned directory.
func startSink(t *testing.T) (addr, dir string) {
	t.Helper()
	testlib.Need(t, "smtp-sink")
	s := testlib.StartSink(t, 16)
	return s.Addr, s.Dir
}

// startPostfix runs a private Postfix whose virtual_alias_maps is our
// socketmap server and whose relayhost is an smtp-sink.
func startPostfix(t *testing.T, socketmapAddr, relayAddr string) *testlib.Postfix {
	t.Helper()
	testlib.Need(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance needs root")
	}
	return testlib.StartPostfix(t, fmt.Sprintf(`virtual_alias_domains = id.test
virtual_alias_maps = socketmap:inet:%s:virtual
relayhost = [127.0.0.1]:%d
`, socketmapAddr, testlib.Port(relayAddr)))
}

func TestPostmapQuery(t *testing.T) {
	postmap := testlib.Need(t, "postmap")
	addr := serveVirtual(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644)
	table := "socketmap:inet:" + addr + ":virtual"
	tests := []struct {
		key, want string
		found     bool
	}{
		{"john@id.test", "john.real@gmail.test", true},
		{"mary@id.test", "mary@example.test", true},
		{"nobody@id.test", "", false},
	}
	for _, tt := range tests {
		out, err := exec.Command(postmap, "-c", dir, "-q", tt.key, table).Output()
		var ee *exec.ExitError
		switch {
		case err == nil && tt.found && strings.TrimSpace(string(out)) == tt.want:
		case errors.As(err, &ee) && ee.ExitCode() == 1 && !tt.found:
		default:
			t.Errorf("postmap -q %s = %q, %v; want %q", tt.key, out, err, tt.want)
		}
	}
	// A TEMP answer is a lookup error for Postfix, not "not found".
	out, err := exec.Command(postmap, "-c", dir, "-q", "broken@id.test", table).CombinedOutput()
	if err == nil || !bytes.Contains(out, []byte("temporary error: lookup failed")) || !bytes.Contains(out, []byte("fatal")) {
		t.Errorf("postmap on a TEMP answer: %v %s", err, out)
	}
}

func TestPostfixDeliversToRealAddress(t *testing.T) {
	sinkAddr, sinkDir := startSink(t)
	pf := startPostfix(t, serveVirtual(t), sinkAddr)

	c, err := smtp.Dial(pf.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.atlassian.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("jira@atlassian.test"); err != nil {
		t.Fatal(err)
	}
	// Unknown and failing addresses are refused in the session, with the
	// codes Postfix gives for NOTFOUND and TEMP.
	for _, tc := range []struct {
		rcpt string
		code int
	}{{"nobody@id.test", 550}, {"broken@id.test", 451}} {
		err := c.Rcpt(tc.rcpt)
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != tc.code {
			t.Errorf("RCPT %s: %v, want %d", tc.rcpt, err, tc.code)
		}
	}
	if err := c.Rcpt("john@id.test"); err != nil {
		t.Fatalf("RCPT john@id.test: %v", err)
	}
	msgID := fmt.Sprintf("<%d.socketmap@atlassian.test>", time.Now().UnixNano())
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: jira@atlassian.test\r\nTo: john@id.test\r\nSubject: socketmap\r\nMessage-ID: %s\r\n\r\nhello\r\n", msgID)
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
	c.Quit()

	// Postfix delivers asynchronously: wait for the sink to keep it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ents, _ := os.ReadDir(sinkDir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(sinkDir, e.Name()))
			if !bytes.Contains(b, []byte(msgID)) {
				continue
			}
			if !bytes.Contains(b, []byte("X-Rcpt-Args: <john.real@gmail.test>")) {
				t.Fatalf("delivered to the wrong address:\n%s", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Postfix did not deliver to the sink")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
