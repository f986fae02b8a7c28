package courier

import (
	"bytes"
	"net"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

// sink is a private Postfix smtp-sink (testlib.Sink) that keeps every
// message it receives.
type sink struct {
	*testlib.Sink
	addr, host, port string
}

// startSink runs smtp-sink with -v (the log helps a failing test) and the
// extra options.
func startSink(t *testing.T, extra ...string) *sink {
	t.Helper()
	testlib.Need(t, "smtp-sink")
	s := testlib.StartSink(t, 16, append([]string{"-v"}, extra...)...)
	host, port, _ := net.SplitHostPort(s.Addr)
	return &sink{Sink: s, addr: s.Addr, host: host, port: port}
}

// dumped is one message as smtp-sink kept it: the envelope arguments it
// saw and the message after smtp-sink's own Received header, with CRLF
// restored.
type dumped struct {
	mailFrom, rcptTo string
	data             []byte
}

// messages returns the messages smtp-sink kept, after the reply to the
// final dot they are on disk.
func (s *sink) messages(t *testing.T) []dumped {
	t.Helper()
	msgs, err := s.Messages()
	if err != nil {
		t.Fatal(err)
	}
	var out []dumped
	for _, m := range msgs {
		d := dumped{mailFrom: m.MailArgs, data: m.Data}
		if n := len(m.RcptArgs); n > 0 {
			d.rcptTo = m.RcptArgs[n-1]
		}
		out = append(out, d)
	}
	return out
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
