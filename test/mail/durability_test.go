package mail

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestKillDashNine: four clients send concurrently and record the
// Message-ID of every message that got 250; idbridge is killed with
// SIGKILL in the middle and restarted on the same data folder; every
// acknowledged message then arrives at the sink (duplicates are allowed).
//
// Until the kill the smarthost is an smtp-sink that waits a second before
// it answers the end of DATA, so that at the kill most acknowledged
// messages exist only in idbridge's queue and a few are in the middle of
// their delivery; after it, a prompt smtp-sink takes its place on the same
// port.
func TestKillDashNine(t *testing.T) {
	t.Parallel()
	needPeers(t, "smtp-sink")
	sinkAddr := FreeAddr(t)
	slow := StartSinkOn(t, sinkAddr, 64, "-w", "1")
	d := NewIdbridge(t, needBin(t), Config{Networks: []string{"127.0.0.0/8"}, Delivery: "smarthost", Smarthost: sinkAddr})
	users := []string{"alice", "bob", "carol", "dave"}
	for _, u := range users {
		d.AddUser(t, u, u+"@real.test")
	}
	d.Start(t)

	const (
		conns     = 4
		perConn   = 400 // upper bound; the kill ends the run long before
		killAfter = 100 // acknowledged messages
	)
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		n     atomic.Int64
		wg    sync.WaitGroup
		kill  = make(chan struct{})
		once  sync.Once
	)
	run := time.Now().UnixNano()
	for g := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(d.SMTPAddr, "")
			if err != nil {
				t.Errorf("client %d: %v", g, err)
				return
			}
			defer c.Close()
			if err := c.Hello("mta.atlassian.net"); err != nil {
				t.Errorf("client %d: %v", g, err)
				return
			}
			for i := range perConn {
				id := fmt.Sprintf("dur.%d.%d.%d@atlassian.net", run, g, i)
				rcpt := users[(g+i)%len(users)] + "@" + vd
				r, err := c.Send(atlSender, []string{rcpt}, AtlassianMessage(atlSender, rcpt, id, 4000))
				if err != nil {
					return // the server died under us
				}
				if r.Code != 250 {
					t.Errorf("client %d message %d: %v", g, i, r)
					return
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
				if n.Add(1) == killAfter {
					once.Do(func() { close(kill) })
				}
			}
		}()
	}
	select {
	case <-kill:
	case <-time.After(60 * time.Second):
		t.Fatalf("only %d messages acknowledged in 60s", n.Load())
	}
	d.Kill()
	wg.Wait()
	mu.Lock()
	want := len(acked)
	mu.Unlock()
	slow.Stop()
	before, _ := slow.Messages()
	t.Logf("killed with SIGKILL after %d acknowledged messages; %d at the sink then", want, len(before))

	fast := StartSinkOn(t, sinkAddr, 64)
	both := func() []*SinkMessage {
		a, err := slow.Messages()
		if err != nil {
			t.Fatal(err)
		}
		b, err := fast.Messages()
		if err != nil {
			t.Fatal(err)
		}
		return append(a, b...)
	}
	d.Start(t)
	var missing []string
	ok := Poll(90*time.Second, 200*time.Millisecond, func() bool {
		msgs := both()
		seen := map[string]int{}
		for _, m := range msgs {
			seen[headerValue(m.Data, "Message-ID")]++
		}
		missing = missing[:0]
		for id := range acked {
			if seen["<"+id+">"] == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	msgs := both()
	dups := map[string]int{}
	for _, m := range msgs {
		dups[headerValue(m.Data, "Message-ID")]++
	}
	nd := 0
	for _, k := range dups {
		if k > 1 {
			nd += k - 1
		}
	}
	t.Logf("after the restart: %d messages at the sink, %d duplicates, %d acknowledged missing", len(msgs), nd, len(missing))
	if !ok {
		if len(missing) > 10 {
			missing = missing[:10]
		}
		t.Errorf("acknowledged messages never delivered after kill -9 and restart, e.g. %v", missing)
		if out, err := d.CLI("", "mailq"); err == nil {
			t.Logf("idbridge mailq:\n%s", out)
		}
	}
}
