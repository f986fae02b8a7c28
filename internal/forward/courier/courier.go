// Package courier delivers one message to one recipient over SMTP
// (RFC 5321): directly to the recipient domain's MX hosts (section 5.1,
// with the implicit MX and RFC 7505 null MX rules) with opportunistic
// STARTTLS (RFC 3207), or through a smarthost with a chosen TLS mode and
// AUTH PLAIN (RFC 4954, RFC 4616); or, for --dev, hands it to a callback.
//
// Every courier answers Deliver(ctx, from, to, data) (err, permanent): a 5xx
// reply to MAIL, RCPT or DATA is permanent; 4xx replies, network and DNS
// errors are temporary and retried by the queue. The message is sent as
// given: the data stays byte-identical (the SMTP client only dot-stuffs it
// on the wire). Forwarding rewrites the envelope sender with SRS and can
// prepend a DKIM-Signature (dkim.go) before handing the message on.
package courier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// Courier is what Forwarding hands a message to; every courier here
// satisfies it, and so does the queue's interface of the same shape.
type Courier interface {
	Deliver(ctx context.Context, from, to string, data []byte) (err error, permanent bool)
}

var (
	_ Courier = (*Direct)(nil)
	_ Courier = (*Smarthost)(nil)
	_ Courier = Dev(nil)
	_ Courier = (*Forwarding)(nil)
)

// Error is a failed delivery: the host tried, the SMTP stage and, when the
// server replied, its code and text.
type Error struct {
	Host      string // host (and address) that answered or failed
	Stage     string // "dial", "EHLO", "STARTTLS", "AUTH", "MAIL FROM", "RCPT TO", "DATA", "DNS"
	Code      int    // SMTP reply code, 0 for network and DNS errors
	Msg       string // server reply text or error text
	Permanent bool
	Err       error // underlying error
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("%s said: %d %s (in reply to %s)", e.Host, e.Code, e.Msg, e.Stage)
	}
	if e.Host == "" {
		return fmt.Sprintf("%s: %s", e.Stage, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Host, e.Stage, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// classify wraps err from an SMTP stage. A 5xx reply is permanent except to
// EHLO, STARTTLS and AUTH, which say nothing about the message.
func classify(host, stage string, err error) *Error {
	e := &Error{Host: host, Stage: stage, Msg: err.Error(), Err: err}
	var te *textproto.Error
	if errors.As(err, &te) {
		e.Code, e.Msg = te.Code, strings.ReplaceAll(te.Msg, "\n", " ")
		switch stage {
		case "MAIL FROM", "RCPT TO", "DATA":
			e.Permanent = te.Code >= 500 && te.Code < 600
		}
	}
	return e
}

func result(err error) (error, bool) {
	if err == nil {
		return nil, false
	}
	var e *Error
	if errors.As(err, &e) {
		return err, e.Permanent
	}
	return err, false
}

// session is one SMTP conversation on conn.
type session struct {
	c    *smtp.Client
	conn net.Conn
	host string
}

// dial connects to addr and reads the greeting; ctx bounds the whole
// conversation (the connection is closed when ctx ends).
func dial(ctx context.Context, d *net.Dialer, addr, serverName string, implicitTLS *tls.Config) (*session, func(), error) {
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, &Error{Host: serverName + "[" + addr + "]", Stage: "dial", Msg: err.Error(), Err: err}
	}
	if implicitTLS != nil {
		tc := tls.Client(conn, implicitTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, nil, &Error{Host: serverName + "[" + addr + "]", Stage: "TLS handshake", Msg: err.Error(), Err: err}
		}
		conn = tc
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	host := serverName + "[" + addr + "]"
	c, err := smtp.NewClient(conn, serverName)
	if err != nil {
		stop()
		conn.Close()
		return nil, nil, classify(host, "greeting", err)
	}
	cleanup := func() { stop(); c.Close() }
	return &session{c: c, conn: conn, host: host}, cleanup, nil
}

// send runs MAIL, RCPT, DATA and QUIT.
func (s *session) send(from, to string, data []byte) error {
	if err := s.c.Mail(from); err != nil {
		return classify(s.host, "MAIL FROM", err)
	}
	if err := s.c.Rcpt(to); err != nil {
		return classify(s.host, "RCPT TO", err)
	}
	w, err := s.c.Data()
	if err != nil {
		return classify(s.host, "DATA", err)
	}
	if _, err := w.Write(data); err != nil {
		return classify(s.host, "DATA", err)
	}
	if err := w.Close(); err != nil {
		return classify(s.host, "DATA", err)
	}
	s.c.Quit() // the message is accepted: a failed QUIT changes nothing
	return nil
}

func isLoopback(conn net.Conn) bool {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.IsLoopback()
	}
	return false
}

// plainAuth is AUTH PLAIN (RFC 4616). Whether it may be sent is decided by
// the caller (TLS or loopback), not by net/smtp's host-name test.
type plainAuth struct{ user, pass string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// Dev hands every message to a callback (the --dev outbox) instead of the
// network. A callback error is temporary.
type Dev func(ctx context.Context, from, to string, data []byte) error

// Deliver implements Courier.
func (f Dev) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	if err := f(ctx, from, to, data); err != nil {
		return fmt.Errorf("dev outbox: %w", err), false
	}
	return nil, false
}

// SRS rewrites an envelope sender (*srs.SRS satisfies it).
type SRS interface {
	Forward(addr string) (string, error)
}

// Forwarding prepares a forwarded message and hands it to Next: the
// envelope sender is rewritten with SRS (when set), and Sign (when set)
// returns the message with headers prepended, such as a DKIM-Signature.
// The rest of the message is passed on unchanged.
type Forwarding struct {
	Next Courier
	SRS  SRS
	Sign func(data []byte) ([]byte, error)
}

// Deliver implements Courier.
func (f *Forwarding) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	if f.SRS != nil {
		rw, err := f.SRS.Forward(from)
		if err != nil {
			return &Error{Stage: "SRS", Msg: err.Error(), Err: err, Permanent: true}, true
		}
		from = rw
	}
	if f.Sign != nil {
		signed, err := f.Sign(data)
		if err != nil {
			return fmt.Errorf("sign: %w", err), false
		}
		data = signed
	}
	return f.Next.Deliver(ctx, from, to, data)
}
