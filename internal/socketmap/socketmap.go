// Package socketmap is a Postfix socketmap lookup server (Postfix
// socketmap_table(5)), so that a Postfix in front of idbridge can resolve
// virtual addresses with
//
//	virtual_alias_domains = id.example.org
//	virtual_alias_maps = socketmap:inet:127.0.0.1:9911:virtual
//
// Requests and replies are netstrings (D. J. Bernstein, "Netstrings",
// 1997: "LEN:DATA,"). A request is "name key"; the reply is "OK value",
// "NOTFOUND ", "TEMP reason", "TIMEOUT reason" or "PERM reason". Parsing is
// strict (decimal length without leading zeros, ':' and ',' where they
// belong) and capped at 100000 bytes, Postfix's own limit; a malformed
// request closes the connection. Connections are reused for many requests;
// idle connections are closed after a timeout and their number is capped.
package socketmap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// MaxNetstring is the largest netstring payload accepted or sent (Postfix's
// socketmap limit).
const MaxNetstring = 100000

// ErrNetstring is wrapped by every netstring syntax error.
var ErrNetstring = errors.New("malformed netstring")

// ReadNetstring reads one netstring of at most max bytes of payload.
// io.EOF is returned only when r is at its end before the first byte.
func ReadNetstring(r *bufio.Reader, max int) ([]byte, error) {
	n, digits := 0, 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits == 0 {
				return nil, io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ':' {
			if digits == 0 {
				return nil, fmt.Errorf("%w: no length", ErrNetstring)
			}
			break
		}
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: unexpected byte %q in length", ErrNetstring, c)
		}
		if digits == 1 && n == 0 {
			return nil, fmt.Errorf("%w: leading zero in length", ErrNetstring)
		}
		n = n*10 + int(c-'0')
		digits++
		if n > max {
			return nil, fmt.Errorf("%w: length exceeds %d", ErrNetstring, max)
		}
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if buf[n] != ',' {
		return nil, fmt.Errorf("%w: missing ',' after %d bytes", ErrNetstring, n)
	}
	return buf[:n], nil
}

// AppendNetstring appends b as a netstring to dst.
func AppendNetstring(dst, b []byte) []byte {
	dst = fmt.Appendf(dst, "%d:", len(b))
	dst = append(dst, b...)
	return append(dst, ',')
}

// LookupFunc resolves a key of the virtual map, as Postfix sends it (a full
// address "user@domain", and for virtual_alias_maps also "user" and
// "@domain" forms, which the function normally answers with found=false).
type LookupFunc func(ctx context.Context, address string) (realEmail string, found bool, err error)

// Server answers socketmap requests for the map named "virtual".
type Server struct {
	lookup LookupFunc
	log    *slog.Logger

	// MaxConns caps simultaneous connections; more are closed at once
	// (default 100).
	MaxConns int
	// IdleTimeout closes a connection that sends no complete request for
	// that long (default 60s; Postfix itself drops idle ones after 10s).
	IdleTimeout time.Duration
	// LookupTimeout caps one lookup; a lookup that takes longer is
	// answered TIMEOUT (default 10s).
	LookupTimeout time.Duration

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns a server answering map "virtual" with lookup.
func NewServer(lookup LookupFunc, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{lookup: lookup, log: logger, conns: map[net.Conn]struct{}{}}
}

// Serve accepts connections on l until ctx ends, then closes l and every
// connection and returns once their handlers have finished.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	maxConns := s.MaxConns
	if maxConns <= 0 {
		maxConns = 100
	}
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	})
	defer stop()
	defer s.wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("socketmap: accept: %w", err)
		}
		s.mu.Lock()
		if len(s.conns) >= maxConns || ctx.Err() != nil {
			s.mu.Unlock()
			s.log.Warn("socketmap: connection limit reached; closing", "remote", c.RemoteAddr().String(), "max", maxConns)
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(ctx, c)
		}()
	}
}

func orDefault(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	idle := orDefault(s.IdleTimeout, 60*time.Second)
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(idle))
		req, err := ReadNetstring(r, MaxNetstring)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if !(errors.As(err, &ne) && ne.Timeout()) {
					s.log.Warn("socketmap: bad request; closing", "remote", c.RemoteAddr().String(), "err", err)
				}
			}
			return
		}
		reply := s.answer(ctx, string(req))
		c.SetWriteDeadline(time.Now().Add(idle))
		if _, err := c.Write(AppendNetstring(nil, []byte(reply))); err != nil {
			return
		}
	}
}

// answer computes the reply to one request.
func (s *Server) answer(ctx context.Context, req string) string {
	name, key, ok := strings.Cut(req, " ")
	if !ok || name == "" {
		return "PERM request is not \"name key\""
	}
	if name != "virtual" {
		return "PERM unknown map " + sanitize(name)
	}
	if key == "" {
		return "NOTFOUND "
	}
	lctx, cancel := context.WithTimeout(ctx, orDefault(s.LookupTimeout, 10*time.Second))
	defer cancel()
	value, found, err := s.lookup(lctx, key)
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		s.log.Error("socketmap: lookup timed out", "key", key, "err", err)
		return "TIMEOUT lookup timed out"
	case err != nil:
		// The reason goes into Postfix's log: say little.
		s.log.Error("socketmap: lookup failed", "key", key, "err", err)
		return "TEMP lookup failed"
	case !found:
		return "NOTFOUND "
	}
	if value == "" || strings.ContainsAny(value, "\r\n\x00") || len(value)+3 > MaxNetstring {
		s.log.Error("socketmap: unusable value", "key", key)
		return "PERM unusable value"
	}
	return "OK " + value
}

func sanitize(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return string(bytes.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, []byte(s)))
}
