package mail

import (
	"fmt"
	"testing"
	"time"
)

// TestPostfixSocketmap: a community that keeps Postfix in front points its
// virtual_alias_maps at idbridge's forward.socketmap_listen. Postfix then
// delivers mail for a member's virtual address to the real address (at the
// sink) and refuses an unknown or locked member at RCPT.
func TestPostfixSocketmap(t *testing.T) {
	t.Parallel()
	needPeers(t, "postfix", "smtp-sink")
	sink := StartSink(t, 16)
	d := NewIdbridge(t, needBin(t), Config{NoSMTP: true, Socketmap: true})
	d.AddUser(t, "alice", "alice@real.test")
	d.AddUser(t, "bob", "bob@real.test")
	d.Start(t)
	if _, err := d.CLI("", "user", "lock", "bob"); err != nil {
		t.Fatal(err)
	}
	pf := StartPostfix(t, fmt.Sprintf(`virtual_alias_domains = %s
virtual_alias_maps = socketmap:inet:%s:virtual
relayhost = [127.0.0.1]:%d`, vd, d.Socketmap, Port(sink.Addr)))

	c, err := Dial(pf.Addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.atlassian.net"); err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Cmd("MAIL FROM:<%s>", atlSender); r.Code != 250 {
		t.Fatalf("MAIL: %v", r)
	}
	for _, rc := range []string{"nobody@" + vd, "bob@" + vd} {
		if r, _ := c.Cmd("RCPT TO:<%s>", rc); r.Code != 550 || r.Enhanced() != "5.1.1" {
			t.Errorf("Postfix with our socketmap, RCPT %s: %v, want 550 5.1.1", rc, r)
		}
	}
	id := fmt.Sprintf("socketmap.%d@atlassian.net", time.Now().UnixNano())
	msg := AtlassianMessage(atlSender, "alice@"+vd, id, 2000)
	if r, _ := c.Cmd("RCPT TO:<alice@%s>", vd); r.Code != 250 {
		t.Fatalf("RCPT alice: %v", r)
	}
	if r, err := c.Data(msg); err != nil || r.Code != 250 {
		t.Fatalf("DATA: %v %v", r, err)
	}
	got := sink.Wait(t, 1, 60*time.Second, withMessageID(id))[0]
	if len(got.To) != 1 || got.To[0] != "alice@real.test" {
		t.Errorf("Postfix delivered to %v, want [alice@real.test]", got.To)
	}
}
