// Package dnstest runs a small authoritative DNS server on loopback for
// tests, answering from records held in a Go map, so that SPF (RFC 7208),
// DKIM key (RFC 6376) and MX (RFC 5321) lookups in tests go through the real
// resolver path (internal/resolver) instead of a fake.
//
// It answers over UDP and TCP on the same port. Names are matched without
// regard to case or a trailing dot. A name that is absent gets NXDOMAIN; a
// name that is present without records of the asked type gets an empty
// NOERROR answer; a name marked Fail gets SERVFAIL.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// MX is one mail exchanger.
type MX struct {
	Pref uint16
	Host string
}

// Records are the records of one name.
type Records struct {
	A     []string // IPv4 addresses
	AAAA  []string // IPv6 addresses
	MX    []MX
	TXT   []string // each one TXT record; long values are split into 255-byte strings
	CNAME string
	PTR   []string
	// Fail makes every query for this name answer SERVFAIL.
	Fail bool
}

// Zone maps owner names ("example.org", "sel._domainkey.example.org") to
// their records.
type Zone map[string]Records

// Server is a running DNS server.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu   sync.Mutex
	zone map[string]Records
}

// Start starts a server for zone on a free loopback port; it stops when the
// test ends.
func Start(t testing.TB, zone Zone) *Server {
	t.Helper()
	s := &Server{zone: map[string]Records{}}
	for name, r := range zone {
		s.zone[canon(name)] = r
	}
	var (
		pc  net.PacketConn
		l   net.Listener
		err error
	)
	// The UDP and TCP ports must be the same number; retry when the TCP
	// twin of a free UDP port is taken.
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("dnstest: no free port: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

// Addr is the "127.0.0.1:PORT" address to put into dns.servers.
func (s *Server) Addr() string { return s.addr }

// Set replaces the records of name.
func (s *Server) Set(name string, r Records) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone[canon(name)] = r
}

// Delete removes name, so that it answers NXDOMAIN.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.zone, canon(name))
}

func canon(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canon(q.Name)
	s.mu.Lock()
	r, ok := s.zone[name]
	s.mu.Unlock()
	switch {
	case !ok:
		m.Rcode = dns.RcodeNameError
	case r.Fail:
		m.Rcode = dns.RcodeServerFailure
	default:
		m.Answer = answers(q, r)
	}
	// Over UDP, a big answer is truncated so that the client retries
	// over TCP, as a real server does.
	if _, isUDP := w.RemoteAddr().(*net.UDPAddr); isUDP {
		size := 512
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func answers(q dns.Question, r Records) []dns.RR {
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	var out []dns.RR
	if r.CNAME != "" {
		return []dns.RR{&dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(r.CNAME)}}
	}
	switch q.Qtype {
	case dns.TypeA:
		for _, a := range r.A {
			out = append(out, &dns.A{Hdr: hdr(dns.TypeA), A: net.ParseIP(a).To4()})
		}
	case dns.TypeAAAA:
		for _, a := range r.AAAA {
			out = append(out, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: net.ParseIP(a)})
		}
	case dns.TypeMX:
		for _, mx := range r.MX {
			out = append(out, &dns.MX{Hdr: hdr(dns.TypeMX), Preference: mx.Pref, Mx: dns.Fqdn(mx.Host)})
		}
	case dns.TypeTXT:
		for _, txt := range r.TXT {
			out = append(out, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: split255(txt)})
		}
	case dns.TypePTR:
		for _, p := range r.PTR {
			out = append(out, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: dns.Fqdn(p)})
		}
	}
	return out
}

func split255(s string) []string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, s[:255])
		s = s[255:]
	}
	return append(parts, s)
}

// String describes the server for test logs.
func (s *Server) String() string { return fmt.Sprintf("dnstest at %s", s.addr) }
