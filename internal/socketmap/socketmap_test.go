package socketmap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestReadNetstring(t *testing.T) {
	big := strings.Repeat("x", MaxNetstring)
	tests := []struct {
		in, want string
		err      error
	}{
		{"0:,", "", nil},
		{"5:hello,", "hello", nil},
		{"12:virtual john,", "virtual john", nil},
		{"100000:" + big + ",", big, nil},
		{"100001:" + big + "x,", "", ErrNetstring},
		{"99999999999999999999:x,", "", ErrNetstring},
		{"05:hello,", "", ErrNetstring},
		{"00:,", "", ErrNetstring},
		{":hello,", "", ErrNetstring},
		{"-1:,", "", ErrNetstring},
		{" 5:hello,", "", ErrNetstring},
		{"5 :hello,", "", ErrNetstring},
		{"+5:hello,", "", ErrNetstring},
		{"5:hello;", "", ErrNetstring},
		{"5:hell,", "", io.ErrUnexpectedEOF},
		{"5:hello", "", io.ErrUnexpectedEOF},
		{"5", "", io.ErrUnexpectedEOF},
		{"", "", io.EOF},
	}
	for _, tt := range tests {
		got, err := ReadNetstring(bufio.NewReader(strings.NewReader(tt.in)), MaxNetstring)
		if !errors.Is(err, tt.err) || string(got) != tt.want {
			name := tt.in
			if len(name) > 40 {
				name = name[:40] + "..."
			}
			t.Errorf("ReadNetstring(%q) = %d bytes, %v; want %d bytes, %v", name, len(got), err, len(tt.want), tt.err)
		}
	}
	// Several in a row on one stream.
	r := bufio.NewReader(strings.NewReader("1:a,2:bc,0:,"))
	for _, want := range []string{"a", "bc", ""} {
		if got, err := ReadNetstring(r, 10); err != nil || string(got) != want {
			t.Fatalf("sequence: %q, %v; want %q", got, err, want)
		}
	}
	if _, err := ReadNetstring(r, 10); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
}

func FuzzReadNetstring(f *testing.F) {
	for _, s := range []string{"0:,", "5:hello,", "05:x,", "3:abc,4:defg,", ":,", "9999999:", "1:a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadNetstring(bufio.NewReader(bytes.NewReader(in)), 1000)
		if err != nil {
			return
		}
		if len(got) > 1000 {
			t.Fatalf("payload of %d bytes over the limit", len(got))
		}
		// What parses is exactly the canonical encoding of the payload.
		if enc := AppendNetstring(nil, got); !bytes.HasPrefix(in, enc) {
			t.Fatalf("parsed %q from %q, which does not start with %q", got, in, enc)
		}
	})
}

var members = map[string]string{
	"john@id.test": "john.real@gmail.test",
	"mary@id.test": "mary@example.test",
}

func lookup(ctx context.Context, key string) (string, bool, error) {
	switch key {
	case "broken@id.test":
		return "", false, errors.New("database is down: secret dsn")
	case "slow@id.test":
		<-ctx.Done()
		return "", false, ctx.Err()
	case "bad@id.test":
		return "x\r\ny", true, nil
	}
	v, ok := members[strings.ToLower(key)]
	return v, ok, nil
}

type testServer struct {
	addr string
}

func start(t *testing.T, mod func(*Server)) *testServer {
	t.Helper()
	s := NewServer(lookup, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.LookupTimeout = 100 * time.Millisecond
	if mod != nil {
		mod(s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{addr: l.Addr().String()}
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{c: c, r: bufio.NewReader(c)}
}

func (c *client) ask(t *testing.T, req string) string {
	t.Helper()
	if _, err := c.c.Write(AppendNetstring(nil, []byte(req))); err != nil {
		t.Fatal(err)
	}
	b, err := ReadNetstring(c.r, MaxNetstring)
	if err != nil {
		t.Fatalf("reply to %q: %v", req, err)
	}
	return string(b)
}

// closed reports whether the server closed the connection (EOF on read).
func (c *client) closed() bool {
	_, err := c.r.ReadByte()
	return err == io.EOF || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestServerAnswers(t *testing.T) {
	ts := start(t, nil)
	c := dial(t, ts.addr)
	tests := []struct{ req, want string }{
		{"virtual john@id.test", "OK john.real@gmail.test"},
		{"virtual JOHN@id.test", "OK john.real@gmail.test"},
		{"virtual mary@id.test", "OK mary@example.test"},
		{"virtual nobody@id.test", "NOTFOUND "},
		{"virtual @id.test", "NOTFOUND "},
		{"virtual john", "NOTFOUND "},
		{"virtual ", "NOTFOUND "},
		{"virtual broken@id.test", "TEMP lookup failed"},
		{"virtual slow@id.test", "TIMEOUT lookup timed out"},
		{"virtual bad@id.test", "PERM unusable value"},
		{"aliases john@id.test", "PERM unknown map aliases"},
		{"virtual", "PERM request is not \"name key\""},
		{"", "PERM request is not \"name key\""},
	}
	for _, tt := range tests { // all on one connection, as Postfix does
		if got := c.ask(t, tt.req); got != tt.want {
			t.Errorf("%q -> %q, want %q", tt.req, got, tt.want)
		}
	}
}

func TestServerClosesOnBadInput(t *testing.T) {
	ts := start(t, nil)
	for _, in := range []string{"05:hello,", "100001:", "5:hello;", "x"} {
		c := dial(t, ts.addr)
		c.c.Write([]byte(in))
		if !c.closed() {
			t.Errorf("%q: connection left open", in)
		}
	}
}

func TestServerIdleTimeout(t *testing.T) {
	ts := start(t, func(s *Server) { s.IdleTimeout = 50 * time.Millisecond })
	c := dial(t, ts.addr)
	c.c.Write([]byte("20:virtual jo")) // a request that never completes
	if !c.closed() {
		t.Fatal("idle connection not closed")
	}
}

func TestServerConnectionLimit(t *testing.T) {
	ts := start(t, func(s *Server) { s.MaxConns = 2 })
	a, b := dial(t, ts.addr), dial(t, ts.addr)
	// Both are being served once they have an answer.
	a.ask(t, "virtual john@id.test")
	b.ask(t, "virtual john@id.test")
	extra := dial(t, ts.addr)
	extra.c.Write(AppendNetstring(nil, []byte("virtual john@id.test")))
	if !extra.closed() {
		t.Fatal("connection over the limit was served")
	}
	b.c.Close()
	// Once a slot is free, a new connection is served (the handler of b
	// may take a moment to notice, so try until one is).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(AppendNetstring(nil, []byte("virtual mary@id.test")))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := ReadNetstring(bufio.NewReader(c), MaxNetstring)
		c.Close()
		if err == nil {
			if string(got) != "OK mary@example.test" {
				t.Fatalf("got %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no slot freed after a client left")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := a.ask(t, "virtual mary@id.test"); got != "OK mary@example.test" {
		t.Fatalf("first connection: %q", got)
	}
}
