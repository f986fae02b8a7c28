package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/forward/courier"
	"github.com/idbridge/idbridge/internal/testlib"
)

// TestRestartThenDeliverToSink queues a message with no courier able to
// run, reopens the queue as after a restart, and delivers it through the
// smarthost courier to a real smtp-sink, byte-identical.
func TestRestartThenDeliverToSink(t *testing.T) {
	testlib.Need(t, "smtp-sink")
	sink := testlib.StartSink(t, 16)
	addr, sinkDir := sink.Addr, sink.Dir

	dir := t.TempDir()
	first := open(t, dir, newFake(nil), nil) // never runs
	body := []byte(msg + "unique-" + time.Now().Format(time.RFC3339Nano) + "\r\n")
	if _, err := first.Put(context.Background(), Envelope{From: "jira@atlassian.test", To: []string{"john.real@gmail.test"}}, body); err != nil {
		t.Fatal(err)
	}

	q := open(t, dir, &courier.Smarthost{Address: addr, TLS: courier.TLSNone}, nil)
	run(t, q)
	waitEmpty(t, q)
	ents, _ := os.ReadDir(sinkDir)
	var found []byte
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(sinkDir, e.Name()))
		if len(b) > 0 {
			found = b
		}
	}
	if found == nil {
		t.Fatal("smtp-sink kept nothing")
	}
	want := bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	if !bytes.Contains(found, []byte("X-Rcpt-Args: <john.real@gmail.test>\n")) || !bytes.Contains(found, want) {
		t.Fatalf("sink kept:\n%s", found)
	}
}
