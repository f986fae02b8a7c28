package mail

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// Client is a plain SMTP client that reports every reply code, so that a
// test can assert codes for refused commands (net/smtp stops at the first).
type Client struct {
	conn net.Conn
	tp   *textproto.Conn
	// Greeting is the server's 220 line.
	Greeting string
}

// Reply is one SMTP reply.
type Reply struct {
	Code int
	Text string // with the enhanced status code, lines joined by "\n"
}

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// Enhanced is the enhanced status code ("5.7.1") at the start of the text.
func (r Reply) Enhanced() string {
	f := strings.Fields(r.Text)
	if len(f) > 0 && strings.Count(f[0], ".") == 2 {
		return f[0]
	}
	return ""
}

// Dial connects to addr from localIP (any loopback address works as a
// source on Linux; "" means the default) and reads the greeting.
func Dial(addr, localIP string) (*Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, tp: textproto.NewConn(conn)}
	c.deadline()
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if code != 220 {
		conn.Close()
		return nil, fmt.Errorf("greeting: %d %s", code, msg)
	}
	c.Greeting = msg
	return c, nil
}

func (c *Client) deadline() { c.conn.SetDeadline(time.Now().Add(60 * time.Second)) }

// Cmd sends one command line and reads the reply.
func (c *Client) Cmd(format string, args ...any) (Reply, error) {
	c.deadline()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		return Reply{}, err
	}
	code, msg, err := c.tp.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			return Reply{}, err
		}
	}
	return Reply{Code: code, Text: msg}, nil
}

// Hello sends EHLO.
func (c *Client) Hello(name string) error {
	r, err := c.Cmd("EHLO %s", name)
	if err != nil {
		return err
	}
	if r.Code != 250 {
		return fmt.Errorf("EHLO: %v", r)
	}
	return nil
}

// Data sends DATA and, after 354, msg (CRLF line ends; dot-stuffed here)
// and the final ".", and returns the final reply.
func (c *Client) Data(msg []byte) (Reply, error) {
	r, err := c.Cmd("DATA")
	if err != nil || r.Code != 354 {
		return r, err
	}
	c.deadline()
	w := bufio.NewWriter(c.conn)
	for len(msg) > 0 {
		line := msg
		if i := bytes.Index(msg, []byte("\r\n")); i >= 0 {
			line = msg[:i+2]
		}
		msg = msg[len(line):]
		if line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			w.WriteString("\r\n")
		}
	}
	w.WriteString(".\r\n")
	if err := w.Flush(); err != nil {
		return Reply{}, err
	}
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			return Reply{}, err
		}
	}
	return Reply{Code: code, Text: text}, nil
}

// Raw writes s as it is and reads one reply.
func (c *Client) Raw(s string) (Reply, error) {
	c.deadline()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		return Reply{}, err
	}
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		if _, ok := err.(*textproto.Error); !ok {
			return Reply{}, err
		}
	}
	return Reply{Code: code, Text: text}, nil
}

// Send runs MAIL, RCPT (each) and DATA, and returns the reply to DATA's
// end, or the first refusal.
func (c *Client) Send(from string, to []string, msg []byte) (Reply, error) {
	r, err := c.Cmd("MAIL FROM:<%s>", from)
	if err != nil || r.Code != 250 {
		return r, err
	}
	for _, rc := range to {
		r, err = c.Cmd("RCPT TO:<%s>", rc)
		if err != nil || r.Code != 250 {
			return r, err
		}
	}
	return c.Data(msg)
}

// Close sends QUIT and closes the connection.
func (c *Client) Close() error {
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	c.tp.PrintfLine("QUIT")
	c.tp.ReadResponse(0)
	return c.conn.Close()
}
