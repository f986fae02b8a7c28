package courier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Resolver looks up mail exchangers and host addresses; *net.Resolver
// satisfies it, and tests inject their own.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Direct delivers to the MX hosts of the recipient's domain.
type Direct struct {
	// Resolver for MX and address lookups; nil: net.DefaultResolver.
	Resolver Resolver
	// Hostname is sent in EHLO.
	Hostname string
	// Port is the SMTP port of the MX hosts: "25" when empty. Any other
	// value is for tests only (a real MX listens on 25); on port 25, MX
	// addresses that are loopback, private, link-local or unspecified are
	// never connected to.
	Port string
	// TLSConfig is used for opportunistic STARTTLS; nil means a config that
	// does not verify the certificate (RFC 7435 opportunistic security: an
	// unverified TLS session still beats clear text). ServerName is set per host.
	TLSConfig *tls.Config
	// DialTimeout per connection (default 30s); Timeout per Deliver when ctx
	// has no deadline (default 10 minutes).
	DialTimeout, Timeout time.Duration
	Logger               *slog.Logger
}

// Deliver tries the MX hosts in preference order, each address of each,
// until one accepts the message or refuses it permanently.
func (d *Direct) Deliver(ctx context.Context, from, to string, data []byte) (error, bool) {
	ctx, cancel := withTimeout(ctx, orDefault(d.Timeout, 10*time.Minute))
	defer cancel()
	return result(d.deliver(ctx, from, to, data))
}

func orDefault(v, def time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return def
}

func (d *Direct) resolver() Resolver {
	if d.Resolver != nil {
		return d.Resolver
	}
	return net.DefaultResolver
}

func (d *Direct) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// hosts returns the mail exchangers of domain in preference order.
func (d *Direct) hosts(ctx context.Context, domain string) ([]string, bool, error) {
	mxs, err := d.resolver().LookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		return nil, false, &Error{Stage: "DNS", Msg: fmt.Sprintf("MX lookup for %s: %v", domain, err), Err: err}
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		return nil, false, &Error{Stage: "DNS", Msg: fmt.Sprintf("%s does not accept mail (null MX, 5.1.10)", domain), Permanent: true}
	}
	if len(mxs) == 0 {
		return []string{domain}, true, nil // RFC 5321 5.1: the implicit MX
	}
	var out []string
	for _, mx := range mxs { // net.Resolver sorts by preference
		out = append(out, strings.TrimSuffix(mx.Host, "."))
	}
	return out, false, nil
}

func (d *Direct) deliver(ctx context.Context, from, to string, data []byte) error {
	at := strings.LastIndexByte(to, '@')
	if at < 0 || at == len(to)-1 {
		return &Error{Stage: "address", Msg: fmt.Sprintf("no domain in %q", to), Permanent: true}
	}
	domain := strings.TrimSuffix(strings.ToLower(to[at+1:]), ".")
	if strings.HasPrefix(domain, "[") {
		return &Error{Stage: "address", Msg: "address literals are not delivered to", Permanent: true}
	}
	hosts, implicit, err := d.hosts(ctx, domain)
	if err != nil {
		return err
	}
	port := d.Port
	if port == "" {
		port = "25"
	}
	var last error
	for _, host := range hosts {
		addrs, err := d.resolver().LookupHost(ctx, host)
		if err != nil {
			if implicit && isNotFound(err) {
				return &Error{Stage: "DNS", Msg: fmt.Sprintf("%s has no MX and no address (5.1.2)", domain), Permanent: true, Err: err}
			}
			last = &Error{Host: host, Stage: "DNS", Msg: err.Error(), Err: err}
			continue
		}
		for _, ip := range addrs {
			if port == "25" && internalAddr(ip) {
				// A member's domain whose MX points at 127.0.0.1 or an
				// internal host must not make us loop mail back into
				// ourselves or talk SMTP to the inside network.
				last = &Error{Host: host, Stage: "DNS", Msg: fmt.Sprintf("MX %s resolves to the internal address %s", host, ip)}
				continue
			}
			err := d.try(ctx, host, net.JoinHostPort(ip, port), from, to, data)
			if err == nil {
				return nil
			}
			var e *Error
			if errors.As(err, &e) && e.Permanent {
				return err
			}
			d.logger().Debug("courier: MX attempt failed", "host", host, "addr", ip, "err", err)
			last = err
			if ctx.Err() != nil {
				return last
			}
		}
	}
	if last == nil {
		last = &Error{Stage: "DNS", Msg: fmt.Sprintf("no address for the MX hosts of %s", domain)}
	}
	return last
}

// try delivers over one connection, with STARTTLS when offered; if the TLS
// handshake fails it tries once more in clear text, as MTAs do.
func (d *Direct) try(ctx context.Context, host, addr, from, to string, data []byte) error {
	err := d.attempt(ctx, host, addr, from, to, data, true)
	var e *Error
	if errors.As(err, &e) && e.Stage == "STARTTLS" {
		return d.attempt(ctx, host, addr, from, to, data, false)
	}
	return err
}

func (d *Direct) attempt(ctx context.Context, host, addr, from, to string, data []byte, useTLS bool) error {
	dialer := &net.Dialer{Timeout: orDefault(d.DialTimeout, 30*time.Second)}
	s, cleanup, err := dial(ctx, dialer, addr, host, nil)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := s.c.Hello(hostnameOr(d.Hostname)); err != nil {
		return classify(s.host, "EHLO", err)
	}
	if ok, _ := s.c.Extension("STARTTLS"); ok && useTLS {
		cfg := &tls.Config{InsecureSkipVerify: true} // see TLSConfig
		if d.TLSConfig != nil {
			cfg = d.TLSConfig.Clone()
		}
		cfg.ServerName = host
		if err := s.c.StartTLS(cfg); err != nil {
			return classify(s.host, "STARTTLS", err)
		}
	}
	return s.send(from, to, data)
}

func hostnameOr(h string) string {
	if h == "" {
		return "localhost"
	}
	return h
}

// internalAddr reports whether ip (a textual address) is one that a public
// MX never has.
func internalAddr(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return true
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() ||
		a.IsMulticast() || a.IsInterfaceLocalMulticast() || a.IsLinkLocalMulticast()
}
