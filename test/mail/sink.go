package mail

import "github.com/idbridge/idbridge/internal/testlib"

// Sink is a running smtp-sink that keeps every message it receives as a
// file (testlib.Sink).
type Sink = testlib.Sink

// SinkMessage is one message smtp-sink kept.
type SinkMessage = testlib.SinkMessage

// StartSink runs smtp-sink on a free loopback port with the given backlog.
func StartSink(t TB, backlog int) *Sink {
	t.Helper()
	return testlib.StartSink(t, backlog)
}

// StartSinkOn runs smtp-sink on addr; extra options (such as "-w", "1":
// wait a second before answering the end of DATA) go before the others.
func StartSinkOn(t TB, addr string, backlog int, extra ...string) *Sink {
	t.Helper()
	return testlib.StartSinkOn(t, addr, backlog, extra...)
}
