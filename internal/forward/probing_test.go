package forward

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// A session that keeps naming recipients we refuse is probing (usernames,
// return addresses): after maxBadRecipients refusals it gets 421 and the
// connection is closed, like Postfix's smtpd_hard_error_limit.
func TestTooManyBadRecipientsCloses(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	c := dialRaw(t, e.addr)
	c.expectCmd("EHLO client.test", 250)
	c.expectCmd("MAIL FROM:<a@x.test>", 250)
	for i := 1; i < maxBadRecipients; i++ {
		c.expectCmd(fmt.Sprintf("RCPT TO:<nobody%d@%s>", i, vd), 550)
	}
	code, msg := c.cmd("RCPT TO:<nobody-last@" + vd + ">")
	if code != 421 {
		t.Fatalf("refusal %d: %d %s, want 421", maxBadRecipients, code, msg)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection still open after 421: %v", err)
	}
	// A fresh session of the same client works.
	c2 := dialRaw(t, e.addr)
	c2.expectCmd("EHLO client.test", 250)
	c2.expectCmd("MAIL FROM:<a@x.test>", 250)
	c2.expectCmd("RCPT TO:<john@"+vd+">", 250)
}

// Guessing a return address (a bounce to SRS0=<guess>…) over many
// connections: after maxSRSFails bad ones from a client network within the
// window, even a valid return address from it is refused with 421 (fakeSRS
// accepts SRS0=good…, so that address is a valid one).
func TestSRSGuessingIsCutOff(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	good := "SRS0=good=TT=sender.test=orig@" + vd
	for i := 0; i < maxSRSFails; i++ {
		c := dialRaw(t, e.addr)
		c.expectCmd("EHLO client.test", 250)
		c.expectCmd("MAIL FROM:<>", 250)
		c.expectCmd(fmt.Sprintf("RCPT TO:<SRS0=g%03d=TT=target.test=victim@%s>", i, vd), 550)
		c.cmd("QUIT")
	}
	c := dialRaw(t, e.addr)
	c.expectCmd("EHLO client.test", 250)
	c.expectCmd("MAIL FROM:<>", 250)
	if code, msg := c.cmd("RCPT TO:<" + good + ">"); code != 421 {
		t.Fatalf("valid return address after %d guesses: %d %s, want 421", maxSRSFails, code, msg)
	}
	// Bounces to role addresses, and mail to members, from that client are
	// not affected.
	e2 := dialRaw(t, e.addr)
	e2.expectCmd("EHLO client.test", 250)
	e2.expectCmd("MAIL FROM:<>", 250)
	e2.expectCmd("RCPT TO:<postmaster@"+vd+">", 250)
	e2.expectCmd("RSET", 250)
	e2.expectCmd("MAIL FROM:<jira@atlassian.test>", 250)
	e2.expectCmd("RCPT TO:<john@"+vd+">", 250)
}
