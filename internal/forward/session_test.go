package forward

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"
)

// smtpCode returns the reply code of an net/smtp error, or 250 for nil.
func smtpCode(err error) (int, string) {
	if err == nil {
		return 250, ""
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code, te.Msg
	}
	return -1, err.Error()
}

// transaction runs MAIL, RCPT and (when every RCPT passed) DATA with a real
// SMTP client, and returns the stage that failed ("" for none) and its reply.
func transaction(t *testing.T, addr, from string, to []string, msg string) (stage string, code int, text string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail(from); err != nil {
		code, text := smtpCode(err)
		return "mail", code, text
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			code, text := smtpCode(err)
			return "rcpt", code, text
		}
	}
	w, err := c.Data()
	if err != nil {
		code, text := smtpCode(err)
		return "data", code, text
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		code, text := smtpCode(err)
		return "end", code, text
	}
	c.Quit()
	return "", 250, ""
}

const simpleMsg = "From: Jira <jira@example.atlassian.test>\r\nTo: john@" + vd + "\r\nSubject: hi\r\n\r\nbody\r\n"

// TestOpenRelayMatrix sends every address form, from an allowed network and
// from an unknown one, and checks that nothing is relayed: only the plain
// virtual address of a member reaches the queue, and only addressed to that
// member's real email.
func TestOpenRelayMatrix(t *testing.T) {
	forms := []struct {
		rcpt string
		code int // for an allowed sender
	}{
		{"john@" + vd, 250},
		{"john@ID.EXAMPLE.TEST", 250},
		{"john@other.test", 550},
		{"john@gmail.test", 550},
		{"john.real@gmail.test", 550},
		{"john%gmail.test@" + vd, 553},
		{"gmail.test!john@" + vd, 553},
		{"john@gmail.test@" + vd, 553},
		{"john@@" + vd, 553},
		{"john@" + vd + ".", 553},
		{"john@[127.0.0.1]", 553},
		{"john@[IPv6:::1]", 553},
		{`"john@gmail.test"@` + vd, 553},
		{`"john%gmail.test"@` + vd, 553},
		{"@gmail.test:john@gmail.test", 553},
		{"@" + vd + ":john@gmail.test", 553},
		{"@relay.test:john@" + vd, 553},
		{"@a.test,@b.test:john@" + vd, 553},
		{`"john"@` + vd, 553},
		{"john@sub." + vd, 550},
		{"john@" + vd + ".gmail.test", 550},
		{"nobody@" + vd, 550},
		{"john.real@" + vd, 550},
	}
	for _, allowed := range []bool{true, false} {
		t.Run(fmt.Sprintf("allowed=%v", allowed), func(t *testing.T) {
			e := start(t, func(c *Config) {
				if allowed {
					c.AllowedNetworks = loopback
				}
			})
			for _, f := range forms {
				stage, code, text := transaction(t, e.addr, "sender@unknown.test", []string{f.rcpt}, simpleMsg)
				switch {
				case !allowed:
					if stage != "mail" || code != 550 || !strings.HasPrefix(text, "5.7.1") {
						t.Errorf("%s from an unknown network: %s %d %s, want MAIL 550 5.7.1", f.rcpt, stage, code, text)
					}
				case f.code == 250:
					if stage != "" {
						t.Errorf("%s: %s %d %s, want accepted", f.rcpt, stage, code, text)
					}
				default:
					if stage != "rcpt" || code != f.code {
						t.Errorf("%s: %s %d %s, want RCPT %d", f.rcpt, stage, code, text, f.code)
					}
				}
			}
			for _, p := range e.queue.all() {
				if len(p.to) != 1 || p.to[0] != "john.real@gmail.test" {
					t.Errorf("queued for %v", p.to)
				}
			}
			want := 0
			if allowed {
				want = 2
			}
			if got := len(e.queue.all()); got != want {
				t.Errorf("%d messages queued, want %d", got, want)
			}
		})
	}
}

func TestRecipientPolicy(t *testing.T) {
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.ReservedLocalParts = []string{"Billing"}
	})
	tests := []struct {
		rcpt   string
		code   int
		ec     string
		target string
	}{
		{"john@" + vd, 250, "", "john.real@gmail.test"},
		{"mary.k@" + vd, 250, "", "mary@outlook.test"},
		{"locked@" + vd, 550, "5.1.1", ""},
		{"unverified@" + vd, 550, "5.1.1", ""},
		{"postmaster@" + vd, 250, "", "ops@operator.test"},
		{"Postmaster", 250, "", "ops@operator.test"},
		{"ABUSE@" + vd, 250, "", "ops@operator.test"},
		{"support@" + vd, 250, "", "ops@operator.test"}, // a role, even if an account has the name
		{"mailer-daemon@" + vd, 250, "", "ops@operator.test"},
		{"billing@" + vd, 250, "", "ops@operator.test"},
		{"SRS0=good=TT=sender.test=orig@" + vd, 250, "", "orig@sender.test"},
		{"SRS0=bad=TT=sender.test=orig@" + vd, 550, "5.1.1", ""},
		{"srs1=x@" + vd, 550, "5.1.1", ""},
		{"john@elsewhere.test", 550, "5.7.1", ""},
		{"jo%hn@" + vd, 553, "5.1.3", ""},
	}
	for _, tt := range tests {
		before := len(e.queue.all())
		stage, code, text := transaction(t, e.addr, "jira@atlassian.test", []string{tt.rcpt}, simpleMsg)
		if code != tt.code || (tt.ec != "" && !strings.HasPrefix(text, tt.ec)) {
			t.Errorf("%s: %s %d %s, want %d %s", tt.rcpt, stage, code, text, tt.code, tt.ec)
			continue
		}
		if tt.target == "" {
			continue
		}
		q := e.queue.all()
		if len(q) != before+1 || len(q[before].to) != 1 || q[before].to[0] != tt.target || q[before].from != "jira@atlassian.test" {
			t.Errorf("%s: queued %+v, want to %s", tt.rcpt, q[before:], tt.target)
		}
	}
}

func TestRecipientLimitAndDedup(t *testing.T) {
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.MaxRecipients = 3
	})
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO client.test", 250)
	rc.expectCmd("MAIL FROM:<a@x.test>", 250)
	rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
	rc.expectCmd("RCPT TO:<JOHN@"+vd+">", 250)
	rc.expectCmd("RCPT TO:<abuse@"+vd+">", 250)
	if msg := rc.expectCmd("RCPT TO:<mary.k@"+vd+">", 452); !strings.HasPrefix(msg, "4.5.3") {
		t.Errorf("over the limit: %s", msg)
	}
	rc.expectCmd("DATA", 354)
	rc.send(simpleMsg + ".\r\n")
	rc.expect(250)
	q := e.queue.all()
	if len(q) != 1 || strings.Join(q[0].to, ",") != "john.real@gmail.test,ops@operator.test" {
		t.Fatalf("queued %+v", q)
	}
	// Several recipients: no "for" clause naming one of them.
	hdr, _ := afterReceived(t, q[0].data)
	if strings.Contains(hdr, " for ") {
		t.Errorf("Received names a recipient: %q", hdr)
	}
}

func TestDirectoryAndQueueFailuresAreTemporary(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	e.dir.fail.Store(true)
	stage, code, text := transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, simpleMsg)
	if stage != "rcpt" || code != 451 || !strings.HasPrefix(text, "4.3.0") || strings.Contains(text, "store unavailable") {
		t.Errorf("directory down: %s %d %s", stage, code, text)
	}
	e.dir.fail.Store(false)
	e.queue.mu.Lock()
	e.queue.fail = true
	e.queue.mu.Unlock()
	stage, code, text = transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, simpleMsg)
	if stage != "end" || code != 451 || !strings.HasPrefix(text, "4.3.0") || strings.Contains(text, "disk") {
		t.Errorf("queue down: %s %d %s", stage, code, text)
	}
	c := e.srv.Counts()
	if c.Accepted != 0 || c.Refused[ReasonTemporary] != 2 {
		t.Errorf("counts %+v", c)
	}
}

// TestBounces: a null sender from an unknown network may reach our SRS
// return addresses and the role addresses, nothing else.
func TestBounces(t *testing.T) {
	e := start(t, nil) // no allowed network, no allowed domain
	tests := []struct {
		rcpt   string
		code   int
		target string
	}{
		{"SRS0=good=TT=sender.test=orig@" + vd, 250, "orig@sender.test"},
		{"SRS0=forged=TT=sender.test=orig@" + vd, 550, ""},
		{"postmaster@" + vd, 250, "ops@operator.test"},
		{"john@" + vd, 550, ""},
		{"nobody@" + vd, 550, ""},
		{"x@elsewhere.test", 550, ""},
	}
	for _, tt := range tests {
		n := len(e.queue.all())
		stage, code, text := transaction(t, e.addr, "", []string{tt.rcpt}, "From: MAILER-DAEMON@mx.test\r\nSubject: Undelivered\r\n\r\nsorry\r\n")
		if code != tt.code {
			t.Errorf("bounce to %s: %s %d %s, want %d", tt.rcpt, stage, code, text, tt.code)
			continue
		}
		if tt.target != "" {
			q := e.queue.all()
			if len(q) != n+1 || q[n].from != "" || q[n].to[0] != tt.target {
				t.Errorf("bounce to %s queued as %+v", tt.rcpt, q[n:])
			}
		}
	}
	// A non-null sender from the same network is refused at MAIL.
	if stage, code, _ := transaction(t, e.addr, "x@sender.test", []string{"SRS0=good=TT=sender.test=orig@" + vd}, simpleMsg); stage != "mail" || code != 550 {
		t.Errorf("non-bounce from unknown network: %s %d", stage, code)
	}
}

func TestSRSDomainSeparate(t *testing.T) {
	e := start(t, func(c *Config) { c.SRSDomain = "bounces.example.test" })
	if stage, code, text := transaction(t, e.addr, "", []string{"SRS0=good=TT=sender.test=orig@bounces.example.test"}, simpleMsg); stage != "" {
		t.Errorf("bounce to the SRS domain: %s %d %s", stage, code, text)
	}
	if stage, code, _ := transaction(t, e.addr, "", []string{"john@bounces.example.test"}, simpleMsg); stage != "rcpt" || code != 550 {
		t.Errorf("non-SRS address at the SRS domain: %s %d", stage, code)
	}
}

// TestByteIdentical sends awkward but valid content and checks that the
// queue gets exactly our header followed by the bytes the client meant.
func TestByteIdentical(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	body := "DKIM-Signature: v=1; a=rsa-sha256; d=example.test; s=s;\r\n" +
		"\th=from:to:subject; bh=abc=; b=def=\r\n" +
		"From:   Jira   <jira@example.test>  \r\n" +
		"To: john@" + vd + "\r\n" +
		"Subject: =?UTF-8?B?w6TDtsO8?=\r\n" +
		"X-Raw-8bit: \xc3\xa4\xff\x01\r\n" +
		"\r\n" +
		".leading dot\r\n" +
		"..two dots\r\n" +
		". \r\n" +
		"trailing spaces   \t\r\n" +
		"\r\n\r\n" +
		strings.Repeat("x", 990) + "\r\n" +
		"no final newline is impossible in SMTP, so the last line ends here\r\n"
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO client.test", 250)
	rc.expectCmd("MAIL FROM:<jira@example.test> BODY=8BITMIME", 250)
	rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
	rc.expectCmd("DATA", 354)
	// Dot-stuff as a client must.
	var stuffed strings.Builder
	for _, line := range strings.SplitAfter(body, "\r\n") {
		if strings.HasPrefix(line, ".") {
			stuffed.WriteString(".")
		}
		stuffed.WriteString(line)
	}
	rc.send(stuffed.String() + ".\r\n")
	if msg := rc.expect(250); !strings.Contains(msg, "queued as Q1") {
		t.Errorf("reply %q does not carry the queue id", msg)
	}
	q := e.queue.all()
	if len(q) != 1 {
		t.Fatalf("%d queued", len(q))
	}
	hdr, rest := afterReceived(t, q[0].data)
	if !bytes.Equal(rest, []byte(body)) {
		t.Errorf("body changed:\n got %q\nwant %q", rest, body)
	}
	for _, want := range []string{"from client.test ([127.0.0.1])", "by mx.id.example.test (idbridge) with ESMTP id ", "for <john@" + vd + ">;"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("Received %q lacks %q", hdr, want)
		}
	}
	date := hdr[strings.LastIndex(hdr, "; ")+2 : len(hdr)-2]
	if _, err := time.Parse(time.RFC1123Z, date); err != nil {
		t.Errorf("Received date %q: %v", date, err)
	}
}

func TestReceivedHeaderHostileHelo(t *testing.T) {
	h := receivedHeader("evil)\r\nBcc: x@y (", netip.MustParseAddr("2001:db8::1"), "mx.test", true, "ID.1", "", time.Unix(0, 0).UTC())
	want := "Received: from [IPv6:2001:db8::1] (helo=evil???Bcc:?x@y??)\r\n\tby mx.test (idbridge) with ESMTPS id ID.1; Thu, 01 Jan 1970 00:00:00 +0000\r\n"
	if h != want {
		t.Errorf("got  %q\nwant %q", h, want)
	}
	if h := receivedHeader("[192.0.2.1]", netip.MustParseAddr("192.0.2.1"), "mx.test", false, "I", "a@b", time.Unix(0, 0).UTC()); !strings.HasPrefix(h, "Received: from [192.0.2.1] ([192.0.2.1])\r\n") {
		t.Errorf("address literal helo: %q", h)
	}
}

func TestLoopDetection(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	msg := func(n int) string {
		return strings.Repeat("Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n", n) + simpleMsg
	}
	if stage, code, text := transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, msg(25)); stage != "" {
		t.Errorf("25 Received: %s %d %s", stage, code, text)
	}
	stage, code, text := transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, msg(26))
	if stage != "end" || code != 554 || !strings.HasPrefix(text, "5.4.6") {
		t.Errorf("26 Received: %s %d %s", stage, code, text)
	}
	// Received-looking lines in the body do not count.
	if stage, _, _ := transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, simpleMsg+msg(30)); stage != "" {
		t.Errorf("Received lines in the body counted: %s", stage)
	}
	if got := e.srv.Counts().Refused[ReasonLoop]; got != 1 {
		t.Errorf("loop refusals counted %d", got)
	}
}

func TestSizeLimit(t *testing.T) {
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.MaxMessageBytes = 1000
	})
	big := simpleMsg + strings.Repeat("0123456789012345678901234567890123456789\r\n", 30)
	stage, code, text := transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, big)
	if stage != "end" || code != 552 || !strings.HasPrefix(text, "5.3.4") {
		t.Errorf("too big: %s %d %s", stage, code, text)
	}
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO c.test", 250)
	if _, msg := rc.cmd("MAIL FROM:<a@x.test> SIZE=5000"); !strings.HasPrefix(msg, "5.3.4") {
		t.Errorf("SIZE over the limit: %s", msg)
	}
	if len(e.queue.all()) != 0 {
		t.Error("something was queued")
	}
}

func TestLineLength(t *testing.T) {
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.MaxLineLength = 200
	})
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO c.test", 250)
	rc.expectCmd("MAIL FROM:<a@x.test>", 250)
	rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
	rc.expectCmd("DATA", 354)
	rc.send("Subject: x\r\n\r\n" + strings.Repeat("y", 500) + "\r\n.\r\n")
	if code, _ := rc.reply(); code/100 != 5 {
		t.Errorf("long line: reply %d", code)
	}
	if len(e.queue.all()) != 0 {
		t.Error("queued")
	}
}

// TestSmuggling sends the SMTP smuggling payloads: an end-of-data written
// with bare LF or CR, followed by a second transaction. go-smtp only ends
// data at CRLF.CRLF, so the payload is data, and we refuse data with bare
// line ends; the smuggled commands never run.
func TestSmuggling(t *testing.T) {
	ends := map[string]string{
		"LF.LF":     "\n.\n",
		"CRLF.LF":   "\r\n.\n",
		"LF.CRLF":   "\n.\r\n",
		"CR.CR":     "\r.\r",
		"CRLF.CR":   "\r\n.\r",
		"CR.CRLF":   "\r.\r\n",
		"bare LF":   "\nfoo\n",
		"null byte": "\r\n\x00.\r\n",
	}
	for name, end := range ends {
		t.Run(name, func(t *testing.T) {
			e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
			rc := dialRaw(t, e.addr)
			rc.expectCmd("EHLO c.test", 250)
			rc.expectCmd("MAIL FROM:<a@x.test>", 250)
			rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
			rc.expectCmd("DATA", 354)
			rc.send("Subject: one\r\n\r\nfirst" + end +
				"MAIL FROM:<admin@atlassian.test>\r\nRCPT TO:<mary.k@" + vd + ">\r\nDATA\r\n" +
				"Subject: smuggled\r\n\r\nsecond\r\n.\r\n")
			code, msg := rc.reply()
			q := e.queue.all()
			for _, p := range q {
				if slices.Contains(p.to, "mary@outlook.test") {
					t.Fatalf("the smuggled transaction ran: %+v", p)
				}
				if _, rest := afterReceived(t, p.data); hasBareNewline(rest) {
					t.Errorf("queued data holds a bare line end: %q", rest)
				}
			}
			switch name {
			case "null byte", "CRLF.CR":
				// No bare line end reaches us (for "\r\n.\r", go-smtp drops
				// the ".\r" as a broken end marker): one message, with the
				// "commands" as its body.
				if code != 250 || len(q) != 1 || !bytes.Contains(q[0].data, []byte("\r\nDATA\r\n")) {
					t.Errorf("reply %d %s, queued %d; want the whole payload as one message", code, msg, len(q))
				}
			default:
				if code != 550 || !strings.HasPrefix(msg, "5.5.2") || len(q) != 0 {
					t.Errorf("reply %d %s, %d queued; want 550 5.5.2 and nothing queued", code, msg, len(q))
				}
			}
			// The session is in step: the next command gets its own reply.
			rc.expectCmd("NOOP", 250)
		})
	}
}

func TestHasBareNewline(t *testing.T) {
	for in, want := range map[string]bool{
		"":              false,
		"a\r\nb\r\n":    false,
		"a\nb":          true,
		"a\rb":          true,
		"a\r":           true,
		"\n":            true,
		"a\r\r\n":       true,
		"a\r\n\r\n\r\n": false,
	} {
		if got := hasBareNewline([]byte(in)); got != want {
			t.Errorf("hasBareNewline(%q) = %v", in, got)
		}
	}
}

func TestCommandTimeout(t *testing.T) {
	e := start(t, func(c *Config) { c.CommandTimeout = 50 * time.Millisecond })
	rc := dialRaw(t, e.addr)
	// Send nothing: the server gives up and says so.
	if code, msg := rc.reply(); code != 421 || !strings.HasPrefix(msg, "4.4.2") {
		t.Errorf("idle: %d %s", code, msg)
	}
}

func TestDataTimeout(t *testing.T) {
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.DataTimeout = 50 * time.Millisecond
	})
	rc := dialRaw(t, e.addr)
	rc.expectCmd("EHLO c.test", 250)
	rc.expectCmd("MAIL FROM:<a@x.test>", 250)
	rc.expectCmd("RCPT TO:<john@"+vd+">", 250)
	rc.expectCmd("DATA", 354)
	rc.send("Subject: slow\r\n\r\nhalf a mess")
	// The server closes the connection; nothing is queued.
	buf := make([]byte, 512)
	for {
		if _, err := rc.conn.Read(buf); err != nil {
			break
		}
	}
	if len(e.queue.all()) != 0 {
		t.Error("queued")
	}
	if got := e.srv.Counts().Refused[ReasonTimeout]; got != 1 {
		t.Errorf("timeouts counted %d", got)
	}
}

func TestConnectionLimits(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxConnectionsPerIP = 2 })
	dialRaw(t, e.addr)
	dialRaw(t, e.addr)
	c := dialRawNoGreet(t, e.addr)
	code, msg := c.reply()
	if code != 421 || !strings.HasPrefix(msg, "4.7.0") {
		t.Errorf("third connection: %d %s", code, msg)
	}
	if got := e.srv.Counts().Refused[ReasonConnections]; got != 1 {
		t.Errorf("refusals counted %d", got)
	}

	e2 := start(t, func(c *Config) { c.MaxConnections = 1 })
	dialRaw(t, e2.addr)
	if code, _ := dialRawNoGreet(t, e2.addr).reply(); code != 421 {
		t.Errorf("over the total: %d", code)
	}
}

func dialRawNoGreet(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net_Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, r: textproto.NewReader(bufioReader(c)), w: bufioWriter(c)}
}

func TestSTARTTLS(t *testing.T) {
	cfg, pool := selfSigned(t)
	e := start(t, func(c *Config) {
		c.AllowedNetworks = loopback
		c.TLS = cfg
	})
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if err := c.StartTLS(tlsClient(pool)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@x.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("john@" + vd); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(simpleMsg))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	q := e.queue.all()
	if len(q) != 1 {
		t.Fatalf("%d queued", len(q))
	}
	if hdr, _ := afterReceived(t, q[0].data); !strings.Contains(hdr, "with ESMTPS") {
		t.Errorf("Received does not say ESMTPS: %q", hdr)
	}
}

// TestMailLog checks one log line per refusal and acceptance, each with
// the session id, and the counters.
func TestMailLog(t *testing.T) {
	e := start(t, func(c *Config) { c.AllowedNetworks = loopback })
	transaction(t, e.addr, "a@x.test", []string{"john@" + vd}, simpleMsg)
	transaction(t, e.addr, "a@x.test", []string{"john@elsewhere.test"}, simpleMsg)
	transaction(t, e.addr, "a@x.test", []string{"ghost@" + vd}, simpleMsg)
	var accepted, refused int
	for _, line := range strings.Split(strings.TrimSpace(e.logs.String()), "\n") {
		switch {
		case strings.Contains(line, `"msg":"mail accepted"`):
			accepted++
		case strings.Contains(line, `"msg":"mail refused"`):
			refused++
		default:
			continue
		}
		if !strings.Contains(line, `"session":"`) {
			t.Errorf("no session id: %s", line)
		}
	}
	if accepted != 1 || refused != 2 {
		t.Errorf("%d accepted and %d refused lines", accepted, refused)
	}
	c := e.srv.Counts()
	if c.Accepted != 1 || c.Refused[ReasonRelay] != 1 || c.Refused[ReasonUnknown] != 1 {
		t.Errorf("counts %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := New(Config{
		Hostname:        "bad host",
		OperatorAddress: "ops@" + vd,
		AllowedDomains:  []string{"ok.test", "not ok"},
		MaxRecipients:   -1,
	}, &fakeDir{}, fakeSRS{}, &memQueue{}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"forward: hostname", "forward: virtual_domain: is required", "forward: allow.domains[1]", "forward: max_recipients"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
