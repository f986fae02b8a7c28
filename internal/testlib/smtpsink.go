package testlib

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sink is a running smtp-sink (Postfix's test SMTP server) that keeps every
// message it receives as a file in Dir (smtp-sink -d).
type Sink struct {
	Addr string
	Dir  string

	daemon *Daemon
	mu     sync.Mutex
	cache  map[string]*SinkMessage // by file name, complete messages only
}

// SinkMessage is one message smtp-sink kept.
type SinkMessage struct {
	File     string
	MailArgs string   // the MAIL FROM arguments as smtp-sink logged them: "<a@b.test> SIZE=…"
	RcptArgs []string // the RCPT TO arguments, likewise
	From     string   // the MAIL FROM address, without <>
	To       []string // the RCPT TO addresses
	// Data is the message as the client sent it (dot-unstuffed, CRLF line
	// ends), without smtp-sink's own headers.
	Data []byte
}

// StartSink runs smtp-sink on a free loopback port with the given backlog.
func StartSink(t TB, backlog int, extra ...string) *Sink {
	t.Helper()
	return StartSinkOn(t, FreePort(t), backlog, extra...)
}

// StartSinkOn runs smtp-sink on addr until the test ends (or Stop); extra
// options (such as "-w", "1": wait a second before answering the end of
// DATA, or "-v" for a log shown when the test fails) go before the others.
// As root it runs as nobody.
func StartSinkOn(t TB, addr string, backlog int, extra ...string) *Sink {
	t.Helper()
	bin := FindProgram("smtp-sink")
	if bin == "" {
		t.Fatalf("smtp-sink is not installed; run scripts/install-peers")
	}
	s := &Sink{Addr: addr, Dir: PublicDir(t, "sink", 0o777), cache: map[string]*SinkMessage{}}
	args := append(append([]string(nil), extra...), "-d", filepath.Join(s.Dir, "%Y%m%d%H%M%S."), addr, strconv.Itoa(backlog))
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	s.daemon = StartDaemon(t, exec.Command(bin, args...), addr, "")
	return s
}

// Stop ends smtp-sink; the messages it kept stay readable.
func (s *Sink) Stop() { s.daemon.Stop() }

// Messages returns every complete message in the sink's folder; once
// smtp-sink has answered the final dot, the message is there.
func (s *Sink) Messages() ([]*SinkMessage, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*SinkMessage
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		if m, ok := s.cache[e.Name()]; ok {
			out = append(out, m)
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.Dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // a transaction smtp-sink discarded after it was refused
		}
		if err != nil {
			return nil, err
		}
		m, complete := ParseSinkFile(b)
		if !complete {
			// Still being written, or a transaction refused or cut off
			// before the end of DATA (the envelope lines only).
			continue
		}
		m.File = e.Name()
		s.cache[e.Name()] = m
		out = append(out, m)
	}
	return out, nil
}

// Wait polls until pick selects at least n messages or timeout passes.
func (s *Sink) Wait(t TB, n int, timeout time.Duration, pick func(*SinkMessage) bool) []*SinkMessage {
	t.Helper()
	var got []*SinkMessage
	ok := Poll(timeout, 50*time.Millisecond, func() bool {
		all, err := s.Messages()
		if err != nil {
			t.Fatalf("sink: %v", err)
		}
		got = got[:0]
		for _, m := range all {
			if pick == nil || pick(m) {
				got = append(got, m)
			}
		}
		return len(got) >= n
	})
	if !ok {
		t.Fatalf("sink has %d matching messages after %v, want %d", len(got), timeout, n)
	}
	return got
}

// ParseSinkFile splits a file of smtp-sink -d: its own X-Client-Addr,
// X-Client-Proto, X-Helo-Args, X-Mail-Args and X-Rcpt-Args lines, its own
// Received header, then the message with LF line ends and one more LF.
// complete is false while smtp-sink is still writing the file.
func ParseSinkFile(b []byte) (m *SinkMessage, complete bool) {
	m = &SinkMessage{}
	rest := b
	line := func() (string, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, true
	}
	for {
		l, ok := line()
		if !ok {
			return nil, false
		}
		if strings.HasPrefix(l, "Received: ") {
			break
		}
		k, v, _ := strings.Cut(l, ": ")
		switch k {
		case "X-Mail-Args":
			m.MailArgs, m.From = v, angle(v)
		case "X-Rcpt-Args":
			m.RcptArgs, m.To = append(m.RcptArgs, v), append(m.To, angle(v))
		}
	}
	for len(rest) > 0 && (rest[0] == '\t' || rest[0] == ' ') {
		if _, ok := line(); !ok {
			return nil, false
		}
	}
	// The message ends with "\n" (its last CRLF) plus the "\n" smtp-sink
	// adds when it has seen the final ".".
	if !bytes.HasSuffix(rest, []byte("\n\n")) {
		return nil, false
	}
	body := rest[:len(rest)-1]
	m.Data = bytes.ReplaceAll(body, []byte("\n"), []byte("\r\n"))
	return m, true
}

func angle(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j >= 0 {
			return v[i+1 : i+j]
		}
	}
	f := strings.Fields(v)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// String describes a message for failure logs.
func (m *SinkMessage) String() string {
	return fmt.Sprintf("%s: from <%s> to %v, %d bytes", m.File, m.From, m.To, len(m.Data))
}
