package mail

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib/dnstest"
)

// forwardSetup is Postfix → idbridge → smtp-sink, with a DNS server that
// holds the MX of the recipients' domains and the DKIM keys.
type forwardSetup struct {
	dns     *dnstest.Server
	sink    *Sink
	idb     *Idbridge
	postfix *Postfix
	atl     *Signer
	txt     map[string]string // DKIM key records, for dkimpy
	dkim    bool              // idbridge signs too
}

func startForward(t *testing.T, delivery string) *forwardSetup {
	t.Helper()
	needPeers(t, "postfix", "smtp-sink")
	needDkimpy(t)
	f := &forwardSetup{txt: map[string]string{}, dkim: true}
	var err error
	if f.atl, err = NewSigner("atlassian.net", "s1"); err != nil {
		t.Fatal(err)
	}
	f.txt[f.atl.TXTName()] = f.atl.TXT()
	mx := dnstest.Records{MX: []dnstest.MX{{Pref: 10, Host: "mx.sink.test"}}}
	f.dns = dnstest.Start(t, dnstest.Zone{
		"real.test":            mx,
		"atlassian.net":        {MX: mx.MX, TXT: []string{"v=spf1 ip4:192.0.2.0/24 -all"}},
		"mx.sink.test":         {A: []string{"127.0.0.1"}},
		f.atl.TXTName():        {TXT: []string{f.atl.TXT()}},
		"_dmarc.atlassian.net": {TXT: []string{"v=DMARC1; p=reject"}},
	})
	f.sink = StartSink(t, 64)
	cfg := Config{
		DNS:          f.dns.Addr(),
		Networks:     []string{"127.0.0.1/32"},
		Domains:      []string{"atlassian.net"},
		Delivery:     delivery,
		DKIMSelector: "idb1",
	}
	if delivery == "smarthost" {
		cfg.Smarthost = f.sink.Addr
	} else {
		cfg.DeliveryPort = Port(f.sink.Addr)
	}
	f.idb = NewIdbridge(t, needBin(t), cfg)
	f.idb.AddUser(t, "alice", "alice@real.test")
	f.idb.Start(t)
	if rec, ok := ourDKIMRecord(t, f.idb); ok {
		name := "idb1._domainkey." + vd
		f.txt[name] = rec
		f.dns.Set(name, dnstest.Records{TXT: []string{rec}})
	} else {
		t.Errorf("BUG: forward.dkim.selector is set but the binary shows no DKIM public key (docs/config.md says `idbridge keys` prints its DNS record)")
	}
	f.postfix = StartPostfix(t, fmt.Sprintf("relayhost = [127.0.0.1]:%d", Port(f.idb.SMTPAddr)))
	return f
}

// sendViaPostfix submits msg to the private Postfix, which relays it to idbridge.
func (f *forwardSetup) sendViaPostfix(t *testing.T, from, to string, msg []byte) {
	t.Helper()
	c, err := Dial(f.postfix.Addr, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mta.atlassian.net"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Send(from, []string{to}, msg)
	if err != nil || r.Code != 250 {
		t.Fatalf("postfix refused the message: %v %v", r, err)
	}
}

func withMessageID(id string) func(*SinkMessage) bool {
	return func(m *SinkMessage) bool { return headerValue(m.Data, "Message-ID") == "<"+id+">" }
}

// checkForwarded asserts that got is sent with only idbridge's Received
// (and DKIM-Signature) and Postfix's Received on top, byte for byte, and
// that every DKIM signature verifies with dkimpy.
func (f *forwardSetup) checkForwarded(t *testing.T, got *SinkMessage, sent []byte, rcpt, realRcpt string) {
	t.Helper()
	if len(got.To) != 1 || got.To[0] != realRcpt {
		t.Errorf("sink recipients %v, want [%s]", got.To, realRcpt)
	}
	if !bytes.HasSuffix(got.Data, sent) {
		t.Errorf("the forwarded message does not end with the message as sent, byte for byte\n--- sent\n%s\n--- got\n%s", sent, got.Data)
		return
	}
	var ours, postfix []headerField
	var other []string
	for _, h := range splitHeader(got.Data[:len(got.Data)-len(sent)]) {
		switch {
		case strings.EqualFold(h.Name, "Received") && strings.Contains(h.Raw, "by mx."+vd):
			ours = append(ours, h)
		case strings.EqualFold(h.Name, "DKIM-Signature") && strings.Contains(strings.ReplaceAll(h.Raw, " ", ""), "d="+vd+";"):
			ours = append(ours, h)
		case strings.EqualFold(h.Name, "Received") && strings.Contains(h.Raw, "by postfix.test"):
			postfix = append(postfix, h)
		default:
			other = append(other, h.Raw)
		}
	}
	wantOurs := 1
	if f.dkim {
		wantOurs = 2
	}
	if len(ours) != wantOurs || len(postfix) != 1 || len(other) != 0 {
		t.Errorf("headers added on top: ours %q, postfix %q, other %q; want our Received (and DKIM-Signature) and one Received by Postfix",
			ours, postfix, other)
	}
	for _, h := range ours {
		if h.Name == "Received" && !strings.Contains(strings.ToLower(h.Raw), strings.ToLower(rcpt)) {
			t.Errorf("our Received header does not name the virtual recipient: %q", h.Raw)
		}
	}
	res := DKIMVerify(t, got.Data, f.txt)
	var okAtl, okOurs bool
	for _, r := range res {
		if !r.OK {
			t.Errorf("dkimpy: signature d=%s s=%s does not verify: %s", r.Domain, r.Selector, r.Error)
		}
		okAtl = okAtl || (r.OK && r.Domain == "atlassian.net")
		okOurs = okOurs || (r.OK && r.Domain == vd)
	}
	if !okAtl {
		t.Errorf("dkimpy: the original d=atlassian.net signature does not verify: %+v", res)
	}
	if f.dkim && !okOurs {
		t.Errorf("dkimpy: no verified d=%s signature of ours: %+v", vd, res)
	}
}

// checkSRS asserts that the envelope sender is an SRS0 address for from
// on the SRS domain, with the day stamp postsrsd gives today.
func checkSRS(t *testing.T, envFrom, from, srsDomain string, ps *Postsrsd) {
	t.Helper()
	m := srs0Re.FindStringSubmatch(envFrom)
	local, domain, _ := strings.Cut(from, "@")
	if m == nil || !strings.EqualFold(m[3], domain) || m[4] != local || !strings.EqualFold(m[5], srsDomain) {
		t.Errorf("envelope sender at the sink is %q, want SRS0=HHHH=TT=%s=%s@%s", envFrom, domain, local, srsDomain)
		return
	}
	if ps == nil {
		return
	}
	theirs := srs0Re.FindStringSubmatch(ps.Encode(t, from))
	if theirs == nil {
		t.Fatalf("postsrsd gave no SRS0 address for %s", from)
	}
	if !strings.EqualFold(m[2], theirs[2]) {
		t.Errorf("day stamp %s of %q differs from postsrsd's %s (%s)", m[2], envFrom, theirs[2], theirs[0])
	}
}

// TestForwardDirect: Postfix relays a DKIM-signed Atlassian-like message
// into idbridge, which delivers it to the MX that DNS names for the
// member's real domain (smtp-sink). The message arrives byte-identical
// below idbridge's Received and DKIM-Signature, both signatures verify with
// dkimpy, and the envelope sender is SRS0 on our domain. Then a bounce to
// that SRS address (from any network) reaches the original sender, and SRS
// addresses minted with another secret (postsrsd) or tampered are refused
// in the session.
func TestForwardDirect(t *testing.T) {
	t.Parallel()
	needPeers(t, "postsrsd")
	f := startForward(t, "direct")
	ps := StartPostsrsd(t, vd)

	id := fmt.Sprintf("direct.%d@atlassian.net", time.Now().UnixNano())
	signed, err := f.atl.Sign(AtlassianMessage(atlSender, "alice@"+vd, id, 6000))
	if err != nil {
		t.Fatal(err)
	}
	f.sendViaPostfix(t, atlSender, "alice@"+vd, signed)
	got := f.sink.Wait(t, 1, 60*time.Second, withMessageID(id))[0]
	f.checkForwarded(t, got, signed, "alice@"+vd, "alice@real.test")
	checkSRS(t, got.From, atlSender, vd, ps)
	srsAddr := got.From
	if srs0Re.FindStringSubmatch(srsAddr) == nil {
		t.FailNow()
	}

	// A bounce for our SRS address, from a network that may not send
	// otherwise, goes back to the original sender.
	bounceID := fmt.Sprintf("bounce.%d@mx.real.test", time.Now().UnixNano())
	bounce := []byte("From: MAILER-DAEMON@mx.real.test\r\nTo: " + srsAddr + "\r\nSubject: Undelivered Mail Returned to Sender\r\n" +
		"Message-ID: <" + bounceID + ">\r\nAuto-Submitted: auto-replied\r\n\r\nThe mail system: alice@real.test: mailbox full\r\n")
	c, err := Dial(f.idb.SMTPAddr, "127.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mx.real.test"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Send("", []string{srsAddr}, bounce); err != nil || r.Code != 250 {
		t.Fatalf("bounce to %s: %v %v, want 250", srsAddr, r, err)
	}
	b := f.sink.Wait(t, 1, 60*time.Second, withMessageID(bounceID))[0]
	if b.From != "" || len(b.To) != 1 || b.To[0] != atlSender {
		t.Errorf("bounce reached the sink as from <%s> to %v, want from <> to [%s]", b.From, b.To, atlSender)
	}

	// Forged return addresses are refused at RCPT.
	m := srs0Re.FindStringSubmatch(srsAddr)
	flip := func(s string) string {
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	forged := map[string]string{
		"minted by postsrsd with another secret": ps.Encode(t, atlSender),
		"hash changed":                           "SRS0=" + flip(m[1]) + "=" + m[2] + "=" + m[3] + "=" + m[4] + "@" + m[5],
		"sender changed":                         "SRS0=" + m[1] + "=" + m[2] + "=" + m[3] + "=mallory@" + m[5],
		"not SRS":                                "SRS0=garbage@" + vd,
	}
	for what, addr := range forged {
		r, err := c.Cmd("MAIL FROM:<>")
		if err != nil || r.Code != 250 {
			t.Fatalf("MAIL FROM:<>: %v %v", r, err)
		}
		r, err = c.Cmd("RCPT TO:<%s>", addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Code != 550 || r.Enhanced() != "5.1.1" {
			t.Errorf("bounce to a forged SRS address (%s) %s: %v, want 550 5.1.1", what, addr, r)
		}
		c.Cmd("RSET")
	}
	// postsrsd's own address decodes with postsrsd: the check above is
	// about the secret, not the format.
	if dec := ps.Decode(t, forged["minted by postsrsd with another secret"]); dec != atlSender {
		t.Errorf("postsrsd decodes its own address to %q", dec)
	}
}

// TestForwardSmarthost: the same relay through Postfix, with idbridge
// delivering through forward.smarthost (tls: none) to smtp-sink.
func TestForwardSmarthost(t *testing.T) {
	t.Parallel()
	f := startForward(t, "smarthost")
	id := fmt.Sprintf("smarthost.%d@atlassian.net", time.Now().UnixNano())
	signed, err := f.atl.Sign(AtlassianMessage(atlSender, "Alice@ID.test", id, 3000))
	if err != nil {
		t.Fatal(err)
	}
	f.sendViaPostfix(t, atlSender, "Alice@ID.test", signed)
	got := f.sink.Wait(t, 1, 60*time.Second, withMessageID(id))[0]
	f.checkForwarded(t, got, signed, "alice@"+vd, "alice@real.test")
	checkSRS(t, got.From, atlSender, vd, nil)
}
