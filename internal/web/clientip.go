package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how much of X-Forwarded-For is read.
const maxForwardedHops = 30

// clientIP returns the address of the client that sent r. It is the peer
// (RemoteAddr) unless the peer is a trusted proxy: then X-Forwarded-For is
// read from the right, skipping trusted proxies, and the first address that
// is not one is the client. A malformed hop stops the walk and the last
// trusted address is used, so that a client cannot smuggle an address in by
// writing garbage after it.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() || !inPrefixes(peer, trusted) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for hop := range strings.SplitSeq(h, ",") {
			hops = append(hops, strings.TrimSpace(hop))
		}
	}
	if len(hops) > maxForwardedHops {
		hops = hops[len(hops)-maxForwardedHops:]
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			// "[v6]:port" or "v4:port" forms appear in some proxies' output.
			if ap, perr := netip.ParseAddrPort(hops[i]); perr == nil {
				a, err = ap.Addr(), nil
			}
		}
		if err != nil {
			return client
		}
		a = a.Unmap().WithZone("")
		client = a
		if !inPrefixes(a, trusted) {
			return a
		}
	}
	return client
}

func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
