package courier

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// sink is a private Postfix smtp-sink that keeps every message in dir.
type sink struct {
	addr, host, port, dir string
}

func startSink(t *testing.T, extra ...string) *sink {
	t.Helper()
	bin := testlib.Need(t, "smtp-sink")
	// Written as nobody: t.TempDir's parent is private, so not there.
	dir, err := os.MkdirTemp("", "idbridge-sink-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	addr := testlib.FreePort(t)
	args := append([]string{"-v"}, extra...) // -v: the log helps a failing test
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	args = append(args, "-d", filepath.Join(dir, "%Y%m%d%H%M%S."), addr, "16")
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("smtp-sink: %s", out.String())
		}
	})
	waitListening(t, addr, exited, &out)
	host, port, _ := net.SplitHostPort(addr)
	return &sink{addr: addr, host: host, port: port, dir: dir}
}

func waitListening(t *testing.T, addr string, exited chan struct{}, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("peer exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listening on %s: %s", addr, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dumped is one message as smtp-sink kept it: the envelope it saw and the
// message after smtp-sink's own Received header, with CRLF restored.
type dumped struct {
	mailFrom, rcptTo string
	data             []byte
}

// messages returns the messages smtp-sink kept, after the reply to the
// final dot they are on disk.
func (s *sink) messages(t *testing.T) []dumped {
	t.Helper()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []dumped
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || !strings.Contains(string(b), "\nReceived: ") {
			// A transaction refused or cut off before DATA: smtp-sink
			// may have written (or be writing) the envelope lines only.
			continue
		}
		out = append(out, parseDump(t, b))
	}
	return out
}

func parseDump(t *testing.T, b []byte) dumped {
	t.Helper()
	var d dumped
	lines := strings.SplitAfter(string(b), "\n")
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], "X-"); i++ {
		k, v, _ := strings.Cut(strings.TrimSuffix(lines[i], "\n"), ": ")
		switch k {
		case "X-Mail-Args":
			d.mailFrom = v
		case "X-Rcpt-Args":
			d.rcptTo = v
		}
	}
	if i >= len(lines) || !strings.HasPrefix(lines[i], "Received: ") {
		t.Fatalf("unexpected dump:\n%s", b)
	}
	for i++; i < len(lines) && strings.HasPrefix(lines[i], "\t"); i++ {
	}
	rest := strings.Join(lines[i:], "")
	d.data = []byte(strings.ReplaceAll(rest, "\n", "\r\n"))
	return d
}

// one expects exactly one kept message.
func (s *sink) one(t *testing.T) dumped {
	t.Helper()
	m := s.messages(t)
	if len(m) != 1 {
		t.Fatalf("smtp-sink kept %d messages, want 1", len(m))
	}
	return m[0]
}

// sameMessage checks that got is want byte for byte; smtp-sink stores
// lines with LF and ends the dump with one more empty line.
func sameMessage(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) && !bytes.Equal(got, append(append([]byte(nil), want...), '\r', '\n')) {
		t.Fatalf("message changed in transit:\ngot  %q\nwant %q", got, want)
	}
}
