package courier

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// TLSMode is how a Smarthost connection is secured.
type TLSMode string

// TLS modes, as in the config's `tls:` keys.
const (
	// TLSRequired: STARTTLS with a verified certificate, or no delivery.
	TLSRequired TLSMode = "required"
	// TLSOpportunistic: STARTTLS (verified) when offered, else clear text.
	TLSOpportunistic TLSMode = "opportunistic"
	// TLSNone: clear text.
	TLSNone TLSMode = "none"
	// TLSImplicit: TLS from the first byte (submissions, port 465).
	TLSImplicit TLSMode = "implicit"
)

// ParseTLSMode checks a config value.
func ParseTLSMode(s string) (TLSMode, error) {
	switch m := TLSMode(s); m {
	case TLSRequired, TLSOpportunistic, TLSNone, TLSImplicit:
		return m, nil
	}
	return "", fmt.Errorf("invalid TLS mode %q (want required, opportunistic, none or implicit)", s)
}

// Smarthost relays every message through one server.
type Smarthost struct {
	Address string // host:port
	TLS     TLSMode
	// Username and Password for AUTH PLAIN (no AUTH when Username is
	// empty). AUTH is sent only over TLS, or in clear text to a loopback
	// address.
	Username, Password string
	Hostname           string // sent in EHLO
	// TLSConfig, if set, is used for TLS (e.g. RootCAs); ServerName is set
	// from Address when empty.
	TLSConfig            *tls.Config
	DialTimeout, Timeout time.Duration
}

// Deliver implements Courier.
func (h *Smarthost) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	ctx, cancel := withTimeout(ctx, orDefault(h.Timeout, 10*time.Minute))
	defer cancel()
	return result(h.deliver(ctx, from, to, data))
}

func (h *Smarthost) tlsConfig() (*tls.Config, error) {
	host, _, err := net.SplitHostPort(h.Address)
	if err != nil {
		return nil, fmt.Errorf("smarthost address %q: %w", h.Address, err)
	}
	cfg := &tls.Config{}
	if h.TLSConfig != nil {
		cfg = h.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg, nil
}

func (h *Smarthost) deliver(ctx context.Context, from, to string, data []byte) error {
	mode := h.TLS
	if mode == "" {
		mode = TLSRequired
	}
	cfg, err := h.tlsConfig()
	if err != nil {
		return &Error{Stage: "config", Msg: err.Error(), Err: err}
	}
	err = h.attempt(ctx, mode, cfg, from, to, data)
	if e, ok := err.(*Error); ok && mode == TLSOpportunistic && e.Stage == "STARTTLS" {
		// The handshake failed: opportunistic means clear text is acceptable.
		return h.attempt(ctx, TLSNone, cfg, from, to, data)
	}
	return err
}

func (h *Smarthost) attempt(ctx context.Context, mode TLSMode, cfg *tls.Config, from, to string, data []byte) error {
	dialer := &net.Dialer{Timeout: orDefault(h.DialTimeout, 30*time.Second)}
	var implicit *tls.Config
	if mode == TLSImplicit {
		implicit = cfg
	}
	s, cleanup, err := dial(ctx, dialer, h.Address, cfg.ServerName, implicit)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := s.c.Hello(hostnameOr(h.Hostname)); err != nil {
		return classify(s.host, "EHLO", err)
	}
	secure := mode == TLSImplicit
	if mode == TLSRequired || mode == TLSOpportunistic {
		if ok, _ := s.c.Extension("STARTTLS"); ok {
			if err := s.c.StartTLS(cfg); err != nil {
				return classify(s.host, "STARTTLS", err)
			}
			secure = true
		} else if mode == TLSRequired {
			return &Error{Host: s.host, Stage: "STARTTLS", Msg: "TLS is required but the server does not offer STARTTLS"}
		}
	}
	if h.Username != "" {
		if !secure && !isLoopback(s.conn) {
			return &Error{Host: s.host, Stage: "AUTH", Msg: "refusing to send credentials without TLS to a non-loopback address"}
		}
		if err := s.c.Auth(plainAuth{h.Username, h.Password}); err != nil {
			return classify(s.host, "AUTH", err)
		}
	}
	return s.send(from, to, data)
}
