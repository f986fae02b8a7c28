// Package forward is the receiving half of idbridge's mail forwarder: an
// SMTP server (RFC 5321) for the virtual domain that accepts mail for
// <username>@<virtual_domain> only from allowed senders and hands it, with
// our own Received header (RFC 5321 section 4.4) prepended and otherwise
// byte-identical, to a durable queue addressed to the member's real email.
//
// Recipients are checked at RCPT time against a strict address grammar, the
// virtual domain and a Directory. Senders are allowed by client network
// (configured prefixes and Atlassian's published IP-ranges JSON), by an SPF
// pass (RFC 7208) of the MAIL FROM domain, or by a DKIM signature (RFC 6376)
// that passes with d= an allowed domain or under one. Network and SPF are
// decided at MAIL time; when only DKIM could still allow a sender, the
// decision comes at the end of DATA. Bounces (null reverse-path) are
// accepted only for SRS return addresses (the SRS scheme of Shevek's paper,
// as in libsrs2 and postsrsd) and role addresses.
//
// The server never relays: every accepted recipient resolves to a
// destination that this package computes itself (the directory's real
// email, the operator address, or the reversed SRS address), never to an
// address the client chose.
package forward

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Directory finds the member behind a virtual address.
type Directory interface {
	// Lookup returns the real email of the account whose username is
	// localPart, which comes lowercased. ok is false when there is no such account, or it is not
	// verified, or it is locked. err is for failures to look (the store is
	// down), which the client hears as a temporary failure.
	Lookup(ctx context.Context, localPart string) (realEmail string, ok bool, err error)
}

// SRSReverser decodes our SRS return addresses (SRS0=…@srs_domain,
// SRS1=…@srs_domain) back into the original sender. It returns an error for
// forged, expired or malformed addresses.
type SRSReverser interface {
	Reverse(addr string) (string, error)
}

// Queue takes accepted messages. Put returns only when the message is
// durable; the client gets 250 only after that.
type Queue interface {
	// to are the forward targets; original[i] is the address the client
	// used for to[i] (the virtual address), for DSNs that must not disclose
	// a member's real address.
	Put(ctx context.Context, from string, to, original []string, data []byte) (id string, err error)
}

// DefaultRoleLocalParts are the local parts that always go to the operator
// address, whatever the directory holds.
var DefaultRoleLocalParts = []string{
	"postmaster", "abuse", "hostmaster", "webmaster", "admin", "administrator",
	"root", "noreply", "no-reply", "mailer-daemon", "security", "support",
}

// Config is the forwarder's own configuration; the zero value of a limit
// means its default.
type Config struct {
	// Listen is the address for ListenAndServe, e.g. "0.0.0.0:25".
	Listen string
	// Hostname is our name in the greeting and in Received headers.
	Hostname string
	// VirtualDomain is the only domain we accept recipients for.
	VirtualDomain string
	// SRSDomain is the domain of our SRS return addresses; empty means
	// VirtualDomain.
	SRSDomain string
	// OperatorAddress receives mail for role addresses (postmaster@, abuse@
	// …). Empty: role addresses are refused.
	OperatorAddress string
	// ReservedLocalParts are role local parts in addition to
	// DefaultRoleLocalParts.
	ReservedLocalParts []string

	// AllowedNetworks are client networks that may send.
	AllowedNetworks []netip.Prefix
	// IPRangesFiles and IPRangesURLs hold Atlassian-style IP-ranges JSON;
	// the email egress prefixes in them may send. Files are re-read when
	// their modification time changes (checked every IPRangesFileCheck)
	// and on Reload; URLs are fetched at start and every IPRangesRefresh.
	IPRangesFiles     []string
	IPRangesURLs      []string
	IPRangesRefresh   time.Duration // default 1h
	IPRangesFileCheck time.Duration // default 1m
	// HTTPClient fetches IPRangesURLs; nil means a client with a 30 s timeout.
	HTTPClient *http.Client
	// AllowedDomains: a sender whose MAIL FROM domain is one of these (or
	// under one) and passes SPF, or whose message carries a passing DKIM
	// signature with d= one of these (or under one), may send.
	AllowedDomains []string
	// Resolver does the SPF and DKIM lookups; nil means net.DefaultResolver.
	Resolver *net.Resolver

	MaxMessageBytes     int64         // default 25 MiB
	MaxRecipients       int           // per message; default 100
	MaxLineLength       int           // default 2000 (twice RFC 5321's 1000)
	CommandTimeout      time.Duration // waiting for a command; default 5m
	DataTimeout         time.Duration // waiting for message data; default 5m
	MaxConnections      int           // default 200
	MaxConnectionsPerIP int           // default 20
	MaxReceived         int           // more Received headers is a loop; default 25

	// TLS enables STARTTLS when set.
	TLS *tls.Config
}

func (c *Config) setDefaults() {
	if c.SRSDomain == "" {
		c.SRSDomain = c.VirtualDomain
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 25 << 20
	}
	def(&c.MaxRecipients, 100)
	def(&c.MaxLineLength, 2000)
	def(&c.MaxConnections, 200)
	def(&c.MaxConnectionsPerIP, 20)
	def(&c.MaxReceived, 25)
	defDur(&c.CommandTimeout, 5*time.Minute)
	defDur(&c.DataTimeout, 5*time.Minute)
	defDur(&c.IPRangesRefresh, time.Hour)
	defDur(&c.IPRangesFileCheck, time.Minute)
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("forward: %s: "+format, append([]any{key}, a...)...))
	}
	if c.Hostname == "" {
		bad("hostname", "is required")
	} else if !isHostName(c.Hostname) {
		bad("hostname", "%q is not a host name", c.Hostname)
	}
	if c.VirtualDomain == "" {
		bad("virtual_domain", "is required")
	} else if !isHostName(c.VirtualDomain) {
		bad("virtual_domain", "%q is not a domain name", c.VirtualDomain)
	}
	if c.SRSDomain != "" && !isHostName(c.SRSDomain) {
		bad("srs_domain", "%q is not a domain name", c.SRSDomain)
	}
	if c.OperatorAddress != "" {
		if _, _, err := ParseAddress(c.OperatorAddress); err != nil {
			bad("operator_address", "%q: %v", c.OperatorAddress, err)
		} else if underDomain(domainOf(c.OperatorAddress), c.VirtualDomain) {
			bad("operator_address", "%q is in the virtual domain; it must be a real mailbox", c.OperatorAddress)
		}
	}
	for i, p := range c.AllowedNetworks {
		if !p.IsValid() {
			bad(fmt.Sprintf("allow.networks[%d]", i), "invalid prefix")
		}
	}
	for i, d := range c.AllowedDomains {
		if !isHostName(d) {
			bad(fmt.Sprintf("allow.domains[%d]", i), "%q is not a domain name", d)
		}
	}
	for i, lp := range c.ReservedLocalParts {
		if !isDotAtom(lp) {
			bad(fmt.Sprintf("reserved_local_parts[%d]", i), "%q is not a local part", lp)
		}
	}
	for name, v := range map[string]int64{
		"max_message_bytes": c.MaxMessageBytes, "max_recipients": int64(c.MaxRecipients),
		"max_line_length": int64(c.MaxLineLength), "max_connections": int64(c.MaxConnections),
		"max_connections_per_ip": int64(c.MaxConnectionsPerIP), "max_received": int64(c.MaxReceived),
	} {
		if v < 0 {
			bad(name, "must not be negative")
		}
	}
	return errors.Join(errs...)
}

// Server is the receiving SMTP server.
type Server struct {
	cfg   Config
	dir   Directory
	srs   SRSReverser
	queue Queue
	log   *slog.Logger

	smtp    *smtp.Server
	ranges  *ipRanges
	roles   map[string]bool
	domains []string
	counts  counters

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int

	// srsFails counts forged or expired return addresses per client
	// network, so that nobody can guess a valid one (a 4-character hash:
	// about a million tries) by spreading the tries over connections.
	srsMu    sync.Mutex
	srsFails map[netip.Prefix]*failWindow
}

// failWindow counts failures since start.
type failWindow struct {
	n     int
	start time.Time
}

// SRS guessing limits: this many bad return addresses from one client
// network (an IPv4 address, an IPv6 /64) within srsFailWindow, and every
// further return address from it is refused for the rest of the window.
const (
	maxSRSFails   = 20
	srsFailWindow = time.Hour
	maxSRSTracked = 10000
)

func clientNet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked()
	}
	return netip.PrefixFrom(ip, 32)
}

// srsFailed records a bad return address from ip.
func (s *Server) srsFailed(ip netip.Addr) {
	now := time.Now()
	s.srsMu.Lock()
	defer s.srsMu.Unlock()
	if s.srsFails == nil {
		s.srsFails = map[netip.Prefix]*failWindow{}
	}
	if len(s.srsFails) >= maxSRSTracked {
		for k, w := range s.srsFails {
			if now.Sub(w.start) > srsFailWindow {
				delete(s.srsFails, k)
			}
		}
	}
	k := clientNet(ip)
	w := s.srsFails[k]
	if w == nil || now.Sub(w.start) > srsFailWindow {
		if w == nil && len(s.srsFails) >= maxSRSTracked {
			return // full of fresh entries: those are blocked already
		}
		w = &failWindow{start: now}
		s.srsFails[k] = w
	}
	w.n++
}

// srsGuessing reports whether ip's network named too many bad return
// addresses lately.
func (s *Server) srsGuessing(ip netip.Addr) bool {
	s.srsMu.Lock()
	defer s.srsMu.Unlock()
	w := s.srsFails[clientNet(ip)]
	return w != nil && w.n >= maxSRSFails && time.Since(w.start) <= srsFailWindow
}

// New checks cfg and builds a server; it reads the IP-ranges files once
// (a missing or invalid file is logged, not fatal; the URLs are fetched
// when Serve starts).
func New(cfg Config, dir Directory, srs SRSReverser, queue Queue, log *slog.Logger) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if dir == nil || srs == nil || queue == nil {
		return nil, errors.New("forward: directory, srs and queue are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "forward")
	s := &Server{
		cfg:    cfg,
		dir:    dir,
		srs:    srs,
		queue:  queue,
		log:    log,
		roles:  map[string]bool{},
		ranges: newIPRanges(cfg.IPRangesFiles, cfg.IPRangesURLs, cfg.HTTPClient, log),
		perIP:  map[netip.Addr]int{},
	}
	s.counts.refused = map[string]uint64{}
	for _, r := range DefaultRoleLocalParts {
		s.roles[r] = true
	}
	for _, r := range cfg.ReservedLocalParts {
		s.roles[strings.ToLower(r)] = true
	}
	for _, d := range cfg.AllowedDomains {
		s.domains = append(s.domains, strings.ToLower(d))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.ranges.loadFiles(true)

	ss := smtp.NewServer(backend{s})
	ss.Domain = cfg.Hostname
	ss.MaxMessageBytes = cfg.MaxMessageBytes
	ss.MaxRecipients = cfg.MaxRecipients
	ss.MaxLineLength = cfg.MaxLineLength
	ss.ReadTimeout = cfg.CommandTimeout
	ss.WriteTimeout = cfg.CommandTimeout
	ss.TLSConfig = cfg.TLS
	ss.ErrorLog = errorLog{log}
	s.smtp = ss
	return s, nil
}

// Serve accepts connections on l until Close or Shutdown. It also runs the
// IP-ranges refresh.
func (s *Server) Serve(l net.Listener) error {
	s.once.Do(func() {
		go s.ranges.run(s.ctx, s.cfg.IPRangesFileCheck, s.cfg.IPRangesRefresh)
	})
	err := s.smtp.Serve(&limitListener{Listener: l, s: s})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// ListenAndServe listens on Config.Listen and serves.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("forward: listen: %w", err)
	}
	return s.Serve(l)
}

// Close stops listening and drops every connection.
func (s *Server) Close() error {
	s.cancel()
	return s.smtp.Close()
}

// Shutdown stops listening and waits for the sessions to end, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	return s.smtp.Shutdown(ctx)
}

// Reload re-reads every IP-ranges file and fetches every URL now (for
// SIGHUP). Sources that fail keep their last good list; the errors are
// returned joined.
func (s *Server) Reload(ctx context.Context) error {
	return errors.Join(s.ranges.loadFiles(true), s.ranges.fetchURLs(ctx))
}

// Counts are the forwarder's counters since start.
type Counts struct {
	Accepted uint64            // messages handed to the queue
	Refused  map[string]uint64 // by reason (the Reason* constants)
}

// Refusal reasons, as they appear in Counts and in the mail log.
const (
	ReasonSyntax      = "syntax"       // recipient or sender address grammar
	ReasonRelay       = "relay"        // recipient outside the virtual domain
	ReasonUnknown     = "unknown_user" // no such, unverified or locked account
	ReasonSender      = "sender"       // sender not allowed (network, SPF)
	ReasonDKIM        = "dkim"         // no passing DKIM signature of an allowed domain
	ReasonBounce      = "bounce"       // null sender to an address that takes no bounces
	ReasonSRS         = "srs"          // forged or expired SRS address
	ReasonLoop        = "loop"         // too many Received headers
	ReasonSize        = "size"         // message too big
	ReasonBareNewline = "bare_newline" // bare CR or LF in the message
	ReasonTemporary   = "temporary"    // directory, DNS or queue failure
	ReasonTimeout     = "timeout"      // client too slow sending data
	ReasonConnections = "connections"  // too many connections
	ReasonProtocol    = "protocol"     // broken data transfer

	// How an accepted sender was allowed ("allowed_by" in the mail log).
	reasonAllowNetwork = "network"
	reasonAllowSPF     = "spf"
	reasonAllowDKIM    = "dkim"
	reasonAllowBounce  = "bounce"
)

type counters struct {
	mu       sync.Mutex
	accepted uint64
	refused  map[string]uint64
}

func (c *counters) refuse(reason string) {
	c.mu.Lock()
	c.refused[reason]++
	c.mu.Unlock()
}

func (c *counters) accept() {
	c.mu.Lock()
	c.accepted++
	c.mu.Unlock()
}

// Counts returns a snapshot of the counters, for a metrics collector.
func (s *Server) Counts() Counts {
	s.counts.mu.Lock()
	defer s.counts.mu.Unlock()
	out := Counts{Accepted: s.counts.accepted, Refused: make(map[string]uint64, len(s.counts.refused))}
	for k, v := range s.counts.refused {
		out.Refused[k] = v
	}
	return out
}

// senderNetworkAllowed reports whether ip is in an allowed network or in a
// loaded IP-ranges list.
func (s *Server) senderNetworkAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s.cfg.AllowedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return s.ranges.Contains(ip)
}

func (s *Server) domainAllowed(d string) bool {
	for _, a := range s.domains {
		if underDomain(d, a) {
			return true
		}
	}
	return false
}

type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (e errorLog) Println(v ...any) { e.log.Warn(strings.TrimSpace(fmt.Sprintln(v...))) }

func newID() string {
	var b [6]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// limitListener enforces the connection limits, and tags each connection
// with a session id.
type limitListener struct {
	net.Listener
	s *Server
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		s := l.s
		s.mu.Lock()
		over := s.total >= s.cfg.MaxConnections || s.perIP[ip] >= s.cfg.MaxConnectionsPerIP
		if !over {
			s.total++
			s.perIP[ip]++
		}
		s.mu.Unlock()
		if over {
			s.counts.refuse(ReasonConnections)
			s.log.Warn("connection refused", "client", ip.String(), "reason", ReasonConnections)
			go func() {
				c.SetWriteDeadline(time.Now().Add(10 * time.Second))
				fmt.Fprintf(c, "421 4.7.0 %s too many connections from your address, try again later\r\n", s.cfg.Hostname)
				c.Close()
			}()
			continue
		}
		return &trackedConn{Conn: c, s: s, ip: ip, id: newID()}, nil
	}
}

// trackedConn is a client connection counted against the limits.
type trackedConn struct {
	net.Conn
	s    *Server
	ip   netip.Addr
	id   string
	once sync.Once

	mu   sync.Mutex
	msgs int
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.total--
		if c.s.perIP[c.ip]--; c.s.perIP[c.ip] <= 0 {
			delete(c.s.perIP, c.ip)
		}
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

func (c *trackedConn) nextMsg() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs++
	return c.msgs
}

// tracked finds our trackedConn under a connection that go-smtp may have
// wrapped in TLS.
func tracked(c net.Conn) *trackedConn {
	for c != nil {
		switch t := c.(type) {
		case *trackedConn:
			return t
		case interface{ NetConn() net.Conn }:
			c = t.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
