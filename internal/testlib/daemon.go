package testlib

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Daemon is a peer program started by StartDaemon.
type Daemon struct {
	Cmd *exec.Cmd

	logFile string
	out     *SyncBuffer // its stdout and stderr, when the caller left them unset
	done    chan struct{}
	err     error // cmd.Wait's, once done is closed
	once    sync.Once
}

// StartDaemon starts cmd in its own process group, stops it when the test
// ends (Stop), and waits until addr accepts connections (none when addr is
// ""). The daemon's log — logFile when not "", and what it writes to stdout
// and stderr when the caller left those unset — is shown when the test
// fails, and when the daemon exits before it listens.
func StartDaemon(t TB, cmd *exec.Cmd, addr, logFile string) *Daemon {
	t.Helper()
	d := &Daemon{Cmd: cmd, logFile: logFile, done: make(chan struct{})}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		d.out = &SyncBuffer{}
		cmd.Stdout, cmd.Stderr = d.out, d.out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.Stop()
		if l := d.Log(); t.Failed() && l != "" {
			t.Logf("%s log:\n%s", filepath.Base(cmd.Path), tail(l, 8000))
		}
	})
	if addr != "" {
		d.WaitListening(t, addr)
	}
	return d
}

// WaitListening waits until addr accepts connections, failing the test
// when the daemon exits first or nothing listens after 20 s.
func (d *Daemon) WaitListening(t TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.done:
			t.Fatalf("%s exited: %v\n%s", d.Cmd.Path, d.err, tail(d.Log(), 8000))
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v\n%s", d.Cmd.Path, addr, err, tail(d.Log(), 8000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends SIGTERM to the daemon's process group, SIGKILL after 10 s, and
// waits for the daemon to exit. It may be called more than once.
func (d *Daemon) Stop() {
	d.once.Do(func() {
		pgid := -d.Cmd.Process.Pid
		syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(pgid, syscall.SIGKILL)
			<-d.done
		}
	})
}

// Log returns the daemon's log so far: its log file, then its output.
func (d *Daemon) Log() string {
	var s string
	if d.logFile != "" {
		b, _ := os.ReadFile(d.logFile)
		s = string(b)
	}
	if d.out != nil {
		s += d.out.String()
	}
	return s
}

// WaitPort polls until something accepts connections on addr, failing the
// test after timeout; for a daemon not started by StartDaemon.
func WaitPort(t TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Poll calls f, sleeping every between calls, until it returns true or
// timeout passes; it reports whether f returned true.
func Poll(timeout, every time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
}

// SyncBuffer is a bytes.Buffer safe for a writer goroutine and a reader:
// a daemon's stdout or stderr that the test reads while it runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n bytes of s, for failure messages.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
