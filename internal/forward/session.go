package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
)

// lookupTimeout bounds one directory, DNS or queue call.
const lookupTimeout = time.Minute

type backend struct{ s *Server }

var (
	_ smtp.Backend = backend{}
	_ smtp.Session = (*session)(nil)
)

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	sess := &session{s: s, c: c, ip: remoteIP(c.Conn()), helo: c.Hostname()}
	if t := tracked(c.Conn()); t != nil {
		sess.tc = t
		sess.id = t.id
	} else {
		sess.id = newID()
	}
	_, sess.tls = c.TLSConnectionState()
	sess.netAllowed = s.senderNetworkAllowed(sess.ip)
	sess.log = s.log.With("session", sess.id)
	sess.log.Debug("session", "client", sess.ip.String(), "helo", sess.helo, "tls", sess.tls, "network_allowed", sess.netAllowed)
	return sess, nil
}

// recipient is one accepted RCPT.
type recipient struct {
	addr   string // as the client gave it
	target string // where it goes
	kind   string // "user", "role" or "srs"
}

type session struct {
	s          *Server
	c          *smtp.Conn
	tc         *trackedConn
	id         string
	log        *slog.Logger
	ip         netip.Addr
	helo       string
	tls        bool
	netAllowed bool

	// The current transaction.
	inTx    bool
	from    string
	bounce  bool
	allowed string // how the sender is allowed: reasonAllow*; "" while only DKIM could
	spfTemp bool
	rcpts   []recipient
	// badRcpts counts the recipients refused in this session (all its
	// transactions).
	badRcpts int
}

func smtpErr(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

func (ss *session) Reset() {
	ss.inTx = false
	ss.from, ss.bounce, ss.allowed, ss.spfTemp, ss.rcpts = "", false, "", false, nil
}

func (ss *session) Logout() error { return nil }

// refuse logs and counts a refusal, and returns the reply.
func (ss *session) refuse(stage, reason string, e *smtp.SMTPError, attrs ...any) *smtp.SMTPError {
	ss.s.counts.refuse(reason)
	args := append([]any{"stage", stage, "reason", reason, "client", ss.ip.String(), "from", ss.from, "code", e.Code}, attrs...)
	ss.log.Info("mail refused", args...)
	return e
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.Reset()
	ss.from = from
	if from == "" {
		ss.inTx, ss.bounce, ss.allowed = true, true, reasonAllowBounce
		return nil
	}
	if !validSender(from) {
		return ss.refuse("mail", ReasonSyntax, smtpErr(553, smtp.EnhancedCode{5, 1, 7}, "Sender address must be local-part@domain in printable ASCII"))
	}
	if ss.netAllowed {
		ss.inTx, ss.allowed = true, reasonAllowNetwork
		return nil
	}
	if d := domainOf(from); ss.s.domainAllowed(d) {
		ctx, cancel := context.WithTimeout(ss.s.ctx, lookupTimeout)
		res, err := spf.CheckHostWithSender(net.IP(ss.ip.AsSlice()), ss.helo, from,
			spf.WithResolver(ss.s.cfg.Resolver), spf.WithContext(ctx))
		cancel()
		ss.log.Debug("spf", "domain", d, "result", string(res), "err", err)
		switch res {
		case spf.Pass:
			ss.inTx, ss.allowed = true, reasonAllowSPF
			return nil
		case spf.TempError:
			ss.spfTemp = true
		}
	}
	if len(ss.s.domains) > 0 {
		// Only a DKIM signature could still allow this sender: decide at
		// the end of DATA.
		ss.inTx = true
		return nil
	}
	// (SPF runs only for allowed domains; with none we get here without it.)
	if ss.s.ranges.Incomplete() {
		return ss.refuse("mail", ReasonTemporary, smtpErr(451, smtp.EnhancedCode{4, 7, 1}, "Could not verify the sender now, try again later"))
	}
	return ss.refuse("mail", ReasonSender, smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Sender not allowed: your address or network may not send mail here"))
}

// validSender accepts what go-smtp parsed as a mailbox when it has no
// control characters, spaces or non-ASCII, which must never reach a queue
// file or an SRS address.
func validSender(a string) bool {
	if strings.Count(a, "@") != 1 || len(a) > 254 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] <= ' ' || a[i] >= 0x7f {
			return false
		}
	}
	return true
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !ss.inTx {
		return smtpErr(503, smtp.EnhancedCode{5, 5, 1}, "Send MAIL first")
	}
	r, e := ss.recipient(to)
	if e != nil {
		// Like Postfix's smtpd_hard_error_limit: a client that keeps
		// naming recipients we refuse is probing (usernames, return
		// addresses), and is cut off.
		if e.Code >= 500 {
			ss.badRcpts++
			if ss.badRcpts >= maxBadRecipients {
				ss.log.Info("too many refused recipients; closing", "client", ss.ip.String())
				return smtpErr(421, smtp.EnhancedCode{4, 7, 0}, "Too many invalid recipients, closing")
			}
		}
		return e
	}
	ss.rcpts = append(ss.rcpts, r)
	return nil
}

// maxBadRecipients is how many refused RCPTs one session may send.
const maxBadRecipients = 10

func (ss *session) recipient(to string) (recipient, *smtp.SMTPError) {
	s := ss.s
	rcpt := func(reason string, e *smtp.SMTPError) (recipient, *smtp.SMTPError) {
		return recipient{}, ss.refuse("rcpt", reason, e, "rcpt", to)
	}
	var local, domain string
	if strings.EqualFold(to, "postmaster") {
		// RFC 5321 section 4.1.1.3: <Postmaster> without a domain.
		local, domain = "postmaster", s.cfg.VirtualDomain
	} else {
		var err error
		local, domain, err = ParseAddress(to)
		if err != nil {
			return rcpt(ReasonSyntax, smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "Bad recipient address syntax: "+err.Error()))
		}
	}
	inVD := strings.EqualFold(domain, s.cfg.VirtualDomain)
	inSRS := strings.EqualFold(domain, s.cfg.SRSDomain)
	if !inVD && !inSRS {
		return rcpt(ReasonRelay, smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Relaying denied: we accept mail only for @"+s.cfg.VirtualDomain))
	}
	lower := strings.ToLower(local)
	var kind string
	switch {
	case inSRS && (strings.HasPrefix(lower, "srs0=") || strings.HasPrefix(lower, "srs1=")):
		kind = "srs"
	case inVD && s.roles[lower]:
		kind = "role"
	case inVD:
		kind = "user"
	default:
		return rcpt(ReasonUnknown, smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "No such mailbox"))
	}
	if ss.bounce && kind == "user" {
		return rcpt(ReasonBounce, smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Bounces are accepted only for return and role addresses"))
	}

	switch kind {
	case "srs":
		if s.srsGuessing(ss.ip) {
			return rcpt(ReasonSRS, smtpErr(421, smtp.EnhancedCode{4, 7, 0}, "Too many invalid return addresses from your network, closing; try again later"))
		}
		orig, err := s.srs.Reverse(to)
		if err != nil || !validSender(orig) {
			ss.log.Debug("srs reverse", "rcpt", to, "err", err)
			s.srsFailed(ss.ip)
			return rcpt(ReasonSRS, smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "Invalid or expired return address"))
		}
		return recipient{addr: to, target: orig, kind: kind}, nil
	case "role":
		if s.cfg.OperatorAddress == "" {
			return rcpt(ReasonUnknown, smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "No such mailbox"))
		}
		return recipient{addr: to, target: s.cfg.OperatorAddress, kind: kind}, nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, lookupTimeout)
	real, ok, err := s.dir.Lookup(ctx, lower)
	cancel()
	if err != nil {
		ss.log.Error("directory lookup failed", "rcpt", to, "err", err)
		return rcpt(ReasonTemporary, smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure looking up the recipient, try again later"))
	}
	if !ok {
		return rcpt(ReasonUnknown, smtpErr(550, smtp.EnhancedCode{5, 1, 1}, "No such mailbox"))
	}
	if !validSender(real) {
		ss.log.Error("directory returned an unusable address", "rcpt", to)
		return rcpt(ReasonTemporary, smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure looking up the recipient, try again later"))
	}
	return recipient{addr: to, target: real, kind: kind}, nil
}

func (ss *session) Data(r io.Reader) error {
	s := ss.s
	data, err := io.ReadAll(&deadlineReader{r: r, c: ss.c.Conn(), d: s.cfg.DataTimeout})
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge):
			return ss.refuse("data", ReasonSize, smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too big: at most "+strconv.FormatInt(s.cfg.MaxMessageBytes, 10)+" bytes"))
		case errors.As(err, &ne) && ne.Timeout():
			// The rest of the message may still arrive and must not be
			// read as commands: end the connection.
			e := ss.refuse("data", ReasonTimeout, smtpErr(421, smtp.EnhancedCode{4, 4, 2}, "Timeout waiting for data"))
			ss.c.Conn().Close()
			return e
		case errors.Is(err, smtp.ErrTooLongLine):
			return ss.refuse("data", ReasonProtocol, smtpErr(500, smtp.EnhancedCode{5, 5, 6}, "Line too long"))
		default:
			ss.log.Debug("data read failed", "err", err)
			return ss.refuse("data", ReasonProtocol, smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Message transfer did not complete"))
		}
	}
	if hasBareNewline(data) {
		// A bare LF or CR is how SMTP smuggling passes a second message
		// through a server that reads "\n.\n" as the end of data.
		return ss.refuse("data", ReasonBareNewline, smtpErr(550, smtp.EnhancedCode{5, 5, 2}, "Message contains a bare CR or LF; every line must end with CRLF"))
	}
	if n := countReceived(data); n > s.cfg.MaxReceived {
		return ss.refuse("data", ReasonLoop, smtpErr(554, smtp.EnhancedCode{5, 4, 6}, "Mail loop: too many Received headers"), "received", n)
	}
	if ss.allowed == "" {
		dkimDomain, temp := ss.checkDKIM(data)
		if dkimDomain == "" {
			if temp || ss.spfTemp || ss.s.ranges.Incomplete() {
				return ss.refuse("data", ReasonTemporary, smtpErr(451, smtp.EnhancedCode{4, 7, 1}, "Could not verify the sender now, try again later"))
			}
			return ss.refuse("data", ReasonDKIM, smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Sender not allowed: no valid DKIM signature of an allowed domain"))
		}
		ss.allowed = reasonAllowDKIM
		ss.log.Debug("dkim pass", "d", dkimDomain)
	}

	msgN := 1
	if ss.tc != nil {
		msgN = ss.tc.nextMsg()
	}
	localID := ss.id + "." + strconv.Itoa(msgN)
	// to are the forward targets, original the addresses the client used
	// for them (a DSN names those, never a member's real address).
	var to, original []string
	seen := map[string]bool{}
	for _, rc := range ss.rcpts {
		if k := strings.ToLower(rc.target); !seen[k] {
			seen[k] = true
			to = append(to, rc.target)
			original = append(original, rc.addr)
		}
	}
	var forClause string
	if len(ss.rcpts) == 1 {
		forClause = ss.rcpts[0].addr
	}
	hdr := receivedHeader(ss.helo, ss.ip, s.cfg.Hostname, ss.tls, localID, forClause, time.Now())
	msg := make([]byte, 0, len(hdr)+len(data))
	msg = append(append(msg, hdr...), data...)

	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), lookupTimeout)
	qid, err := s.queue.Put(ctx, ss.from, to, original, msg)
	cancel()
	if err != nil {
		ss.log.Error("queue put failed", "err", err)
		return ss.refuse("data", ReasonTemporary, smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary failure storing the message, try again later"))
	}
	s.counts.accept()
	rcpts := make([]string, len(ss.rcpts))
	for i, rc := range ss.rcpts {
		rcpts[i] = rc.addr
	}
	ss.log.Info("mail accepted", "client", ss.ip.String(), "from", ss.from, "rcpt", rcpts, "to", to,
		"size", len(data), "allowed_by", ss.allowed, "queue_id", qid, "local_id", localID)
	// go-smtp writes an *SMTPError as the reply whatever its code: this is
	// how the reply carries the queue id.
	return smtpErr(250, smtp.EnhancedCode{2, 0, 0}, "OK: queued as "+qid)
}

// checkDKIM returns the d= of the first signature that passes and is an
// allowed domain or under one, and whether any allowed-domain signature
// failed only temporarily.
func (ss *session) checkDKIM(data []byte) (domain string, temp bool) {
	s := ss.s
	ctx, cancel := context.WithTimeout(s.ctx, lookupTimeout)
	defer cancel()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(data), &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return s.cfg.Resolver.LookupTXT(ctx, name) },
		MaxVerifications: 10,
	})
	if err != nil {
		ss.log.Debug("dkim", "err", err)
		return "", false
	}
	for _, v := range vs {
		if !s.domainAllowed(v.Domain) {
			continue
		}
		if v.Err == nil {
			return v.Domain, false
		}
		ss.log.Debug("dkim", "d", v.Domain, "err", v.Err)
		if dkim.IsTempFail(v.Err) {
			temp = true
		}
	}
	return "", temp
}

// deadlineReader moves the read deadline forward before every read, so that
// DataTimeout bounds each wait for the client, not the whole transfer.
type deadlineReader struct {
	r io.Reader
	c net.Conn
	d time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.c.SetReadDeadline(time.Now().Add(d.d))
	return d.r.Read(p)
}

// hasBareNewline reports whether data holds a LF not after a CR, or a CR not
// before a LF.
func hasBareNewline(data []byte) bool {
	for i, c := range data {
		switch c {
		case '\n':
			if i == 0 || data[i-1] != '\r' {
				return true
			}
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return true
			}
		}
	}
	return false
}

// countReceived counts the Received fields in the header section.
func countReceived(data []byte) int {
	n := 0
	for len(data) > 0 {
		line := data
		rest := []byte(nil)
		if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
			line, rest = data[:i], data[i+2:]
		}
		if len(line) == 0 {
			break // end of the header section
		}
		if i := bytes.IndexByte(line, ':'); i > 0 && strings.EqualFold(strings.TrimRight(string(line[:i]), " \t"), "received") {
			n++
		}
		data = rest
	}
	return n
}

// receivedHeader builds our trace field (RFC 5321 section 4.4; "ESMTPS"
// per RFC 3848):
//
//	Received: from HELO ([IP])
//		by HOSTNAME (idbridge) with ESMTPS id ID
//		for <RCPT>; DATE
func receivedHeader(helo string, ip netip.Addr, hostname string, tls bool, id, rcpt string, now time.Time) string {
	lit := "[" + ip.String() + "]"
	if ip.Is6() {
		lit = "[IPv6:" + ip.String() + "]"
	}
	var b strings.Builder
	b.WriteString("Received: from ")
	if isHostName(helo) || isAddressLiteral(helo) {
		b.WriteString(helo + " (" + lit + ")")
	} else {
		b.WriteString(lit + " (helo=" + commentSafe(helo) + ")")
	}
	with := "ESMTP"
	if tls {
		with = "ESMTPS"
	}
	b.WriteString("\r\n\tby " + hostname + " (idbridge) with " + with + " id " + id)
	if rcpt != "" {
		b.WriteString("\r\n\tfor <" + rcpt + ">")
	}
	b.WriteString("; " + now.Format(time.RFC1123Z) + "\r\n")
	return b.String()
}

func isAddressLiteral(s string) bool {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false
	}
	inner := strings.TrimPrefix(s[1:len(s)-1], "IPv6:")
	_, err := netip.ParseAddr(inner)
	return err == nil
}

// commentSafe keeps a client-supplied string safe inside a header comment.
func commentSafe(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == '\\' {
			b[i] = '?'
		}
	}
	if len(b) == 0 {
		return "?"
	}
	return string(b)
}
