package mail

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib/dnstest"
)

// want is a set of acceptable refusals ("550 5.7.1").
type want []string

var (
	syntax = want{"553 5.1.3", "501 5.1.3", "501 5.5.4", "553 5.1.7", "501 5.5.2"}
	relay  = want{"550 5.7.1"}
)

func (w want) has(r Reply) bool {
	return slices.Contains(w, fmt.Sprintf("%d %s", r.Code, r.Enhanced()))
}

// TestOpenRelayMatrix sends every address form that a relay might honour
// (percent hack, bang paths, quoted local parts, source routes, address
// literals, other domains, a trailing dot) from an allowed client and from
// one outside forward.allow.networks: each is refused at RCPT with the
// syntax or the relay code, and nothing reaches the sink. An unknown, an
// unverified and a locked member get 550 5.1.1; a sender that is neither
// on an allowed network nor of an allowed domain gets 550 5.7.1 at MAIL;
// one of an allowed domain without a valid DKIM signature gets 550 5.7.1
// at the end of DATA.
func TestOpenRelayMatrix(t *testing.T) {
	t.Parallel()
	needPeers(t, "smtp-sink")
	atl, err := NewSigner("atlassian.net", "s1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewSigner("atlassian.net", "s1") // same name, key not published
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.Start(t, dnstest.Zone{
		"atlassian.net": {TXT: []string{"v=spf1 ip4:127.0.0.3 -all"}},
		atl.TXTName():   {TXT: []string{atl.TXT()}},
	})
	sink := StartSink(t, 16)
	d := NewIdbridge(t, needBin(t), Config{
		DNS:       dns.Addr(),
		Networks:  []string{"127.0.0.1/32"},
		Domains:   []string{"atlassian.net"},
		Delivery:  "smarthost",
		Smarthost: sink.Addr,
	})
	d.AddUser(t, "alice", "alice@real.test")
	d.AddUser(t, "bob", "bob@real.test")
	if _, err := d.CLI("pw-of-carol-1234\n", "user", "add", "carol", "--email", "carol@real.test",
		"--first-name", "C", "--last-name", "L", "--password-stdin", "--unverified"); err != nil {
		t.Fatal(err)
	}
	d.Start(t)

	forms := []struct {
		rcpt string
		want want
	}{
		{"alice%real.test@" + vd, syntax},
		{"real.test!alice@" + vd, syntax},
		{`"alice"@` + vd, syntax},
		{`"alice@real.test"@` + vd, syntax},
		{`"alice%real.test"@` + vd, syntax},
		{"@" + vd + ":alice@real.test", append(syntax, relay...)},
		{"@real.test:alice@" + vd, append(syntax, relay...)},
		{"@" + vd + ",@real.test:alice@" + vd, append(syntax, relay...)},
		{"alice@[127.0.0.1]", append(syntax, relay...)},
		{"alice@[IPv6:::1]", append(syntax, relay...)},
		{"alice@real.test", relay},
		{"alice@" + vd + ".", append(syntax, relay...)},
		{"alice@sub." + vd, relay},
		{"alice@" + vd + ".real.test", relay},
		{"alice@" + vd + "@real.test", syntax},
		{"alice@real.test@" + vd, syntax},
		{"alice", append(syntax, relay...)},
		{"alice@", syntax},
		{"@" + vd, syntax},
		{"alice\\@real.test@" + vd, syntax},
		{"nobody@" + vd, want{"550 5.1.1"}},
		{"carol@" + vd, want{"550 5.1.1"}}, // not verified
	}
	clients := []struct{ name, ip string }{{"allowed client", "127.0.0.1"}, {"disallowed client", "127.0.0.2"}}
	for _, cl := range clients {
		// One session per address: a session is closed (421) at its tenth
		// refused recipient, which has a test of its own below.
		var c *Client
		for _, f := range forms {
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = Dial(d.SMTPAddr, cl.ip); err != nil {
				t.Fatal(err)
			}
			if err := c.Hello("client.test"); err != nil {
				t.Fatal(err)
			}
			// From the disallowed network a sender of an allowed domain gets
			// as far as RCPT (only DKIM could still allow it).
			if r, _ := c.Cmd("MAIL FROM:<%s>", atlSender); r.Code != 250 {
				t.Fatalf("%s: MAIL FROM:<%s>: %v", cl.name, atlSender, r)
			}
			r, err := c.Cmd("RCPT TO:<%s>", f.rcpt)
			if err != nil {
				t.Fatalf("%s: RCPT TO:<%s>: %v", cl.name, f.rcpt, err)
			}
			if !f.want.has(r) {
				t.Errorf("%s: RCPT TO:<%s>: %v, want one of %v", cl.name, f.rcpt, r, f.want)
			}
		}
		c.Cmd("RSET")
		// A sender of a domain that is not allowed, from a network that is
		// not allowed, is refused: at MAIL, or at the end of DATA when a
		// DKIM signature of an allowed domain could still have allowed it.
		if cl.ip != "127.0.0.1" {
			id := fmt.Sprintf("evil.%d@evil.test", time.Now().UnixNano())
			r, err := c.Send("someone@evil.test", []string{"alice@" + vd}, AtlassianMessage("someone@evil.test", "alice@"+vd, id, 800))
			if err != nil || r.Code != 550 || r.Enhanced() != "5.7.1" {
				t.Errorf("%s: a sender of a domain that is not allowed: %v %v, want 550 5.7.1", cl.name, r, err)
			}
			c.Cmd("RSET")
		}
		c.Close()
	}

	// A session that probes (ten refused recipients) is closed with 421.
	probe, err := Dial(d.SMTPAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if err := probe.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	probe.Cmd("MAIL FROM:<%s>", atlSender)
	var probeLast string
	for i := 0; i < 10; i++ {
		r, err := probe.Cmd("RCPT TO:<probe%d@%s>", i, vd)
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		probeLast = fmt.Sprint(r)
		if i < 9 && r.Code != 550 {
			t.Fatalf("probe %d: %v, want 550", i, r)
		}
		if i == 9 && r.Code != 421 {
			t.Fatalf("tenth refused recipient: %v, want 421", r)
		}
	}
	if r, err := probe.Cmd("NOOP"); err == nil && r.Code == 250 {
		t.Errorf("the session still answers after %s", probeLast)
	}

	// From the disallowed network, an allowed domain's sender needs a valid
	// DKIM signature: decided at the end of DATA.
	stamp := time.Now().UnixNano()
	plain := AtlassianMessage(atlSender, "alice@"+vd, fmt.Sprintf("nodkim.%d@atlassian.net", stamp), 1000)
	badSig, _ := other.Sign(AtlassianMessage(atlSender, "alice@"+vd, fmt.Sprintf("baddkim.%d@atlassian.net", stamp), 1000))
	goodID := fmt.Sprintf("gooddkim.%d@atlassian.net", stamp)
	goodSig, _ := atl.Sign(AtlassianMessage(atlSender, "alice@"+vd, goodID, 1000))
	spfID := fmt.Sprintf("spf.%d@atlassian.net", stamp)
	spfMsg := AtlassianMessage(atlSender, "alice@"+vd, spfID, 1000)
	for _, tc := range []struct {
		what, ip string
		msg      []byte
		want     want
	}{
		{"unsigned", "127.0.0.2", plain, relay},
		{"signed with a key that is not published", "127.0.0.2", badSig, relay},
		{"signed with the published key", "127.0.0.2", goodSig, want{"250 2.0.0"}},
		{"unsigned, from an address the SPF record names", "127.0.0.3", spfMsg, want{"250 2.0.0"}},
	} {
		c, err := Dial(d.SMTPAddr, tc.ip)
		if err != nil {
			t.Fatal(err)
		}
		c.Hello("mta.atlassian.net")
		r, err := c.Send(atlSender, []string{"alice@" + vd}, tc.msg)
		if err != nil || !tc.want.has(r) {
			t.Errorf("disallowed network, %s message: %v %v, want %v", tc.what, r, err, tc.want)
		}
		c.Close()
	}

	// A member is accepted until an admin locks the account; then mail to
	// it is refused in the session (the running server sees the lock).
	c, err := Dial(d.SMTPAddr, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Hello("client.test")
	c.Cmd("MAIL FROM:<%s>", atlSender)
	if r, _ := c.Cmd("RCPT TO:<bob@%s>", vd); r.Code != 250 {
		t.Fatalf("bob before the lock: %v", r)
	}
	c.Cmd("RSET")
	if _, err := d.CLI("", "user", "lock", "bob"); err != nil {
		t.Fatal(err)
	}
	var last Reply
	if !Poll(15*time.Second, 100*time.Millisecond, func() bool {
		c.Cmd("MAIL FROM:<%s>", atlSender)
		last, _ = c.Cmd("RCPT TO:<bob@%s>", vd)
		c.Cmd("RSET")
		return last.Code == 550 && last.Enhanced() == "5.1.1"
	}) {
		t.Errorf("a locked member: RCPT %v, want 550 5.1.1", last)
	}
	// Role addresses go to the operator, upper case or not.
	c.Cmd("MAIL FROM:<%s>", atlSender)
	for _, rc := range []string{"postmaster@" + vd, "Abuse@" + vd, "postmaster"} {
		if r, _ := c.Cmd("RCPT TO:<%s>", rc); r.Code != 250 {
			t.Errorf("role address %s: %v, want 250", rc, r)
		}
	}
	c.Cmd("RSET")

	// The messages accepted are the DKIM- and the SPF-allowed one; they
	// are all the sink ever gets.
	isGood := func(m *SinkMessage) bool {
		id := headerValue(m.Data, "Message-ID")
		return id == "<"+goodID+">" || id == "<"+spfID+">"
	}
	sink.Wait(t, 2, 60*time.Second, isGood)
	all, _ := sink.Messages()
	for _, m := range all {
		if len(m.To) != 1 || m.To[0] != "alice@real.test" || !isGood(m) {
			t.Errorf("relayed: %v (Message-ID %s)", m, headerValue(m.Data, "Message-ID"))
		}
	}
	if t.Failed() {
		t.Logf("refusals in the log:\n%s", grepLines(tail(d.Log, 400), "refused"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
