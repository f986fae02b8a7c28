package mail

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPeersBaseline checks the test bench itself, without idbridge: the
// private Postfix relays the signed Atlassian-like message to smtp-sink,
// the sink file parses back to the exact bytes sent below Postfix's
// Received header, and dkimpy verifies the signature. The other tests'
// byte-for-byte and DKIM assertions rest on this.
func TestPeersBaseline(t *testing.T) {
	t.Parallel()
	needPeers(t, "postfix", "smtp-sink")
	needDkimpy(t)
	sink := StartSink(t, 16)
	pf := StartPostfix(t, fmt.Sprintf("relayhost = [127.0.0.1]:%d", Port(sink.Addr)))
	atl, err := NewSigner("atlassian.net", "s1")
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("baseline.%d@atlassian.net", time.Now().UnixNano())
	signed, err := atl.Sign(AtlassianMessage(atlSender, "alice@real.test", id, 5000))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(pf.Addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Hello("mta.atlassian.net")
	if r, err := c.Send(atlSender, []string{"alice@real.test"}, signed); err != nil || r.Code != 250 {
		t.Fatalf("postfix: %v %v", r, err)
	}
	got := sink.Wait(t, 1, 30*time.Second, withMessageID(id))[0]
	if got.From != atlSender || len(got.To) != 1 || got.To[0] != "alice@real.test" {
		t.Errorf("envelope at the sink: %v", got)
	}
	if !bytes.HasSuffix(got.Data, signed) {
		t.Fatalf("sink copy does not end with the message sent\n--- sent\n%s\n--- got\n%s", signed, got.Data)
	}
	top := splitHeader(got.Data[:len(got.Data)-len(signed)])
	if len(top) != 1 || top[0].Name != "Received" || !strings.Contains(top[0].Raw, "by postfix.test") {
		t.Errorf("Postfix added %q, want its Received only", top)
	}
	res := DKIMVerify(t, got.Data, map[string]string{atl.TXTName(): atl.TXT()})
	if len(res) != 1 || !res[0].OK {
		t.Errorf("dkimpy: %+v", res)
	}
}
