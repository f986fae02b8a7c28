// Package resolver builds the DNS resolver that idbridge uses for every mail
// lookup (SPF, RFC 7208; DKIM keys, RFC 6376; MX, RFC 5321), from the
// `dns.servers` list of the config. An empty list means the system resolver;
// tests point the list at a local server (internal/testlib/dnstest).
package resolver

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
)

// New returns a resolver that sends every query to servers ("host:port"
// strings), taking them in turn. With no servers it returns
// net.DefaultResolver.
//
// The resolver uses Go's own DNS client (PreferGo), so it also works where
// cgo is off, and asks over UDP first and over TCP when an answer is
// truncated, both to the same server address.
func New(servers []string) (*net.Resolver, error) {
	if len(servers) == 0 {
		return net.DefaultResolver, nil
	}
	addrs := make([]string, 0, len(servers))
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("dns server %q: %w", s, err)
		}
		if host == "" {
			return nil, fmt.Errorf("dns server %q: empty host", s)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("dns server %q: invalid port %q", s, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	var next atomic.Uint64
	var d net.Dialer
	return &net.Resolver{
		PreferGo: true,
		// The Go resolver calls Dial with the name server it took from
		// /etc/resolv.conf; we ignore that address and use ours, rotating
		// so that one dead server does not take every query with it.
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			i := next.Add(1) - 1
			return d.DialContext(ctx, network, addrs[i%uint64(len(addrs))])
		},
	}, nil
}
