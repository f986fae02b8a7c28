package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// checker collects validation mistakes.
type checker struct {
	c    *Config
	errs []*Error
}

func (v *checker) add(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Source: v.source(path)})
}

// source says where the value at path came from; an item of a list set
// from the environment has the list's variable.
func (v *checker) source(path string) string {
	if s, ok := v.c.sources[path]; ok {
		return s
	}
	if i := strings.LastIndexByte(path, '['); i > 0 && strings.HasSuffix(path, "]") {
		return v.c.sources[path[:i]]
	}
	return ""
}

// Validate checks c and returns a *ValidationError listing every mistake, or
// nil. It reads nothing but the files c names (to check they are readable)
// and changes nothing.
func (c *Config) Validate() error {
	v := &checker{c: c}
	v.top()
	v.http()
	v.dns()
	v.mailOut()
	v.forward()
	v.saml()
	v.oidc()
	v.discourse()
	v.site()
	v.accounts()
	v.sessions()
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.errs}
}

func (v *checker) top() {
	c := v.c
	if c.BaseURL == "" {
		v.add("base_url", "required: the public URL of idbridge, e.g. https://id.example.org")
	} else if u, msg := parseWebURL(c.BaseURL); msg != "" {
		v.add("base_url", "%s", msg)
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		v.add("base_url", "must have no user, query or fragment, e.g. https://id.example.org")
	} else if strings.HasSuffix(u.Path, "/") {
		v.add("base_url", "must not end with \"/\" (write %s)", strings.TrimRight(c.BaseURL, "/"))
	}
	if c.VirtualDomain == "" {
		v.add("virtual_domain", "required: the domain of virtual addresses, e.g. id.example.org")
	} else {
		v.domain("virtual_domain", c.VirtualDomain, 2)
	}
	v.store()
	if c.DataDir == "" {
		v.add("data_dir", "required: the folder for the SQLite file and the mail queue")
	}
	if !oneOf(c.Log.Level, "debug", "info", "warn", "error") {
		v.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "text", "json") {
		v.add("log.format", "%q is not one of text, json", c.Log.Format)
	}
	v.positive("tokens.verify_ttl", c.Tokens.VerifyTTL)
	v.positive("tokens.reset_ttl", c.Tokens.ResetTTL)
}

func (v *checker) store() {
	s := v.c.Store
	switch {
	case s == "":
		v.add("store", `required: "sqlite:PATH" or "postgres://user@host/db"`)
	case strings.HasPrefix(s, "sqlite:"):
		if strings.TrimPrefix(s, "sqlite:") == "" {
			v.add("store", `"sqlite:" needs a file path, e.g. sqlite:/var/lib/idbridge/idbridge.db`)
		}
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			v.add("store", "not a valid PostgreSQL URL")
		}
	default:
		v.add("store", `must be "sqlite:PATH" or "postgres://user@host/db"`)
	}
}

func (v *checker) http() {
	if v.c.HTTP.Listen == "" {
		v.add("http.listen", "required: host:port, e.g. 127.0.0.1:8080")
	} else {
		v.hostPort("http.listen", v.c.HTTP.Listen, true)
	}
	v.prefixes("http.trusted_proxies", v.c.HTTP.TrustedProxies)
}

func (v *checker) dns() {
	for i, s := range v.c.DNS.Servers {
		p := fmt.Sprintf("dns.servers[%d]", i)
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
			continue
		}
		v.add(p, "%q must be an IP address or IP:port, e.g. 127.0.0.1:5353", s)
	}
}

func (v *checker) mailOut() {
	m := v.c.MailOut
	switch a, err := mail.ParseAddress(m.From); {
	case v.derivedFromBadDomain("mail_out.from"):
	case m.From == "":
		v.add("mail_out.from", "required: e.g. \"Example ID <noreply@id.example.org>\"")
	case err != nil || !strings.Contains(a.Address, "@"):
		v.add("mail_out.from", "%q is not an email address, e.g. \"Example ID <noreply@id.example.org>\"", m.From)
	}
	v.smarthost("mail_out.smarthost", m.Smarthost, !v.c.DevMode,
		"required: idbridge sends verification and reset mail through it")
	if m.RateLimit.PerAddress < 1 {
		v.add("mail_out.rate_limit.per_address", "must be at least 1")
	}
	v.positive("mail_out.rate_limit.window", m.RateLimit.Window)
	v.positive("mail_out.retry_lifetime", m.RetryLifetime)
}

func (v *checker) smarthost(path string, s Smarthost, required bool, why string) {
	host := ""
	if s.Address == "" {
		if required {
			v.add(path+".address", "%s", why)
		}
	} else if v.hostPort(path+".address", s.Address, false) {
		host, _, _ = net.SplitHostPort(s.Address)
	}
	if !oneOf(s.TLS, TLSRequired, TLSOpportunistic, TLSNone, TLSImplicit) {
		v.add(path+".tls", "%q is not one of required, opportunistic, none, implicit", s.TLS)
	}
	switch {
	case s.Username != "" && s.PasswordFile == "":
		v.add(path+".password_file", "required with username")
	case s.Username == "" && s.PasswordFile != "":
		v.add(path+".username", "required with password_file")
	}
	if s.PasswordFile != "" {
		v.secret(path+".password_file", s.PasswordFile)
	}
	if s.Username != "" && s.TLS == TLSNone && host != "" && !isLoopback(host) {
		v.add(path+".tls", "none with a username would send the password in clear text; AUTH without TLS is allowed only to a loopback address")
	}
}

func (v *checker) forward() {
	f := v.c.Forward
	const p = "forward."
	if f.Listen != "" {
		v.hostPort(p+"listen", f.Listen, true)
	}
	if f.SocketmapListen != "" {
		v.hostPort(p+"socketmap_listen", f.SocketmapListen, true)
	}
	switch {
	case v.derivedFromBadDomain(p + "hostname"):
	case f.Hostname == "":
		v.add(p+"hostname", "required: the name in the SMTP greeting")
	default:
		v.domain(p+"hostname", f.Hostname, 1)
	}
	v.pair(p+"tls", "cert_file", f.TLS.CertFile, "key_file", f.TLS.KeyFile)
	enabled := f.Listen != "" || f.SocketmapListen != ""
	switch {
	case f.OperatorAddress == "":
		if enabled && !v.c.DevMode {
			v.add(p+"operator_address", "required: the real mailbox that postmaster@ and abuse@ go to")
		}
	case !isMailbox(f.OperatorAddress):
		v.add(p+"operator_address", "%q is not an email address such as infra@example.org", f.OperatorAddress)
	case v.c.VirtualDomain != "" && strings.EqualFold(domainOf(f.OperatorAddress), v.c.VirtualDomain):
		v.add(p+"operator_address", "must not be on the virtual domain %s (mail would loop)", v.c.VirtualDomain)
	}
	v.prefixes(p+"allow.networks", f.Allow.Networks)
	for i, file := range f.Allow.IPRangesFiles {
		v.readable(fmt.Sprintf("%sallow.ip_ranges_files[%d]", p, i), file)
	}
	// The list decides who may send: fetch it over https only (http only
	// from a loopback host, for tests), so nobody on the path can add to it.
	for i, s := range f.Allow.IPRangesURLs {
		v.spURL(fmt.Sprintf("%sallow.ip_ranges_urls[%d]", p, i), s)
	}
	for i, d := range f.Allow.Domains {
		v.domain(fmt.Sprintf("%sallow.domains[%d]", p, i), d, 2)
	}
	if !oneOf(f.Delivery, DeliveryDirect, DeliverySmarthost) {
		v.add(p+"delivery", "%q is not one of direct, smarthost", f.Delivery)
	}
	v.smarthost(p+"smarthost", f.Smarthost, f.Delivery == DeliverySmarthost,
		"required with delivery: smarthost")
	switch {
	case v.derivedFromBadDomain(p + "srs_domain"):
	case f.SRSDomain == "":
		v.add(p+"srs_domain", "required (defaults to virtual_domain)")
	default:
		v.domain(p+"srs_domain", f.SRSDomain, 2)
	}
	if v.positive(p+"srs_max_age", f.SRSMaxAge) && f.SRSMaxAge.Duration() >= 1024*24*time.Hour {
		v.add(p+"srs_max_age", "must be under 1024 days (SRS day stamps wrap)")
	}
	if f.DKIM.Selector != "" && !dkimSelector.MatchString(f.DKIM.Selector) {
		v.add(p+"dkim.selector", "%q is not a DKIM selector (letters, digits, hyphens, dots)", f.DKIM.Selector)
	}
	if f.MaxMessageBytes < 1 {
		v.add(p+"max_message_bytes", "must be positive")
	}
	for _, n := range []struct {
		key string
		val int
	}{{"max_recipients", f.MaxRecipients}, {"destination_concurrency", f.DestinationConcurrency}, {"max_connections", f.MaxConnections}, {"max_connections_per_ip", f.MaxConnectionsPerIP}} {
		if n.val < 1 {
			v.add(p+n.key, "must be at least 1")
		}
	}
	if f.MaxConnectionsPerIP > f.MaxConnections && f.MaxConnections >= 1 {
		v.add(p+"max_connections_per_ip", "must not exceed max_connections (%d)", f.MaxConnections)
	}
	v.positive(p+"command_timeout", f.CommandTimeout)
	v.positive(p+"data_timeout", f.DataTimeout)
	v.positive(p+"ip_ranges_refresh", f.IPRangesRefresh)
	v.positive(p+"queue_lifetime", f.QueueLifetime)
	if f.DeliveryPort < 1 || f.DeliveryPort > 65535 {
		v.add(p+"delivery_port", "must be a port from 1 to 65535")
	}
	for i, s := range f.ReservedExtra {
		if !localPart.MatchString(s) {
			v.add(fmt.Sprintf("%sreserved_extra[%d]", p, i), "%q must be a lower-case local part such as \"billing\"", s)
		}
	}
}

func (v *checker) saml() {
	s := v.c.SAML
	v.pair("saml", "key_file", s.KeyFile, "cert_file", s.CertFile)
	names := map[string]int{}
	entities := map[string]int{}
	for i, sp := range s.ServiceProviders {
		p := fmt.Sprintf("saml.service_providers[%d].", i)
		v.name(p+"name", sp.Name, names, i, "service_providers")
		if sp.EntityID != "" {
			if u, err := url.Parse(sp.EntityID); err != nil || u.Scheme == "" {
				v.add(p+"entity_id", "%q is not a URI such as https://auth.atlassian.com/saml/0000", sp.EntityID)
			} else if j, dup := entities[sp.EntityID]; dup {
				v.add(p+"entity_id", "%q is also the entity_id of service_providers[%d]", sp.EntityID, j)
			} else {
				entities[sp.EntityID] = i
			}
		}
		if sp.MetadataFile != "" {
			v.readable(p+"metadata_file", sp.MetadataFile)
			for _, k := range []struct{ key, val string }{{"acs_url", sp.ACSURL}, {"slo_url", sp.SLOURL}, {"certificate_file", sp.CertificateFile}} {
				if k.val != "" {
					v.add(p+k.key, "not allowed with metadata_file, which gives it")
				}
			}
		} else {
			if sp.EntityID == "" {
				v.add(p+"entity_id", "required (or metadata_file)")
			}
			if sp.ACSURL == "" {
				v.add(p+"acs_url", "required (or metadata_file)")
			}
			if sp.ACSURL != "" {
				v.spURL(p+"acs_url", sp.ACSURL)
			}
			if sp.SLOURL != "" {
				v.spURL(p+"slo_url", sp.SLOURL)
			}
			if sp.CertificateFile != "" {
				v.readable(p+"certificate_file", sp.CertificateFile)
			}
		}
		if !oneOf(sp.NameID, NameIDVirtualAddress, NameIDEmail, NameIDUsername, NameIDPersistent) {
			v.add(p+"name_id", "%q is not one of virtual_address, email, username, persistent", sp.NameID)
		}
		if !oneOf(sp.Attributes, AttributesAtlassian, AttributesGeneric) {
			v.add(p+"attributes", "%q is not one of atlassian, generic", sp.Attributes)
		}
		if !oneOf(sp.Sign, SignResponse, SignAssertion, SignBoth) {
			v.add(p+"sign", "%q is not one of response, assertion, both", sp.Sign)
		}
		if len(sp.DefaultRelayState) > 1024 {
			v.add(p+"default_relay_state", "longer than 1024 bytes")
		}
	}
}

func (v *checker) oidc() {
	ids := map[string]int{}
	for i, cl := range v.c.OIDC.Clients {
		p := fmt.Sprintf("oidc.clients[%d].", i)
		v.name(p+"id", cl.ID, ids, i, "clients")
		if cl.SecretFile != "" {
			v.secret(p+"secret_file", cl.SecretFile)
		}
		if len(cl.RedirectURIs) == 0 {
			v.add(p+"redirect_uris", "at least one redirect URI is required")
		}
		for j, r := range cl.RedirectURIs {
			rp := fmt.Sprintf("%sredirect_uris[%d]", p, j)
			if u, err := url.Parse(r); err == nil && u.Fragment != "" {
				v.add(rp, "must not have a fragment (#…)")
				continue
			}
			v.spURL(rp, r)
		}
	}
}

func (v *checker) discourse() {
	names := map[string]int{}
	for i, d := range v.c.Discourse {
		p := fmt.Sprintf("discourse[%d].", i)
		v.name(p+"name", d.Name, names, i, "discourse")
		if d.URL == "" {
			v.add(p+"url", "required: the forum's URL, e.g. https://talk.example.org")
		} else {
			v.spURL(p+"url", d.URL)
		}
		if d.SecretFile == "" {
			v.add(p+"secret_file", "required: the file holding the DiscourseConnect secret")
		} else if b, ok := v.secret(p+"secret_file", d.SecretFile); ok && len(b) < 10 {
			v.add(p+"secret_file", "the secret must be at least 10 characters (Discourse refuses shorter ones)")
		}
	}
}

var cssColor = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

func (v *checker) site() {
	s := v.c.Site
	if strings.TrimSpace(s.Name) == "" {
		v.add("site.name", "required: shown in page titles and mails")
	}
	if s.LogoURL != "" && !strings.HasPrefix(s.LogoURL, "/") {
		if _, msg := parseWebURL(s.LogoURL); msg != "" {
			v.add("site.logo_url", "must be an absolute http(s) URL or a path starting with /")
		}
	}
	if !cssColor.MatchString(s.Color) {
		v.add("site.color", "%q is not a colour such as #2f5d8a", s.Color)
	}
}

// owaspArgon2 lists OWASP's argon2id minimum configurations (memory KiB,
// iterations, parallelism 1), all of equal strength.
var owaspArgon2 = [][2]uint32{{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5}}

func (v *checker) accounts() {
	a := v.c.Accounts
	for i, name := range a.ReservedUsernames {
		p := fmt.Sprintf("accounts.reserved_usernames[%d]", i)
		switch {
		case name == "":
			v.add(p, "must not be empty")
		case name != strings.ToLower(name):
			v.add(p, "%q must be lower case (usernames are compared in lower case)", name)
		case strings.ContainsAny(name, "@ \t"):
			v.add(p, "%q is not a username", name)
		}
	}
	v.positive("accounts.unverified_ttl", a.UnverifiedTTL)
	if a.PasswordMinLength < 8 || a.PasswordMinLength > 128 {
		v.add("accounts.password_min_length", "must be from 8 to 128")
	}
	g := a.Argon2
	if g.Iterations < 1 {
		v.add("accounts.argon2.iterations", "must be at least 1")
	}
	if g.Parallelism < 1 {
		v.add("accounts.argon2.parallelism", "must be at least 1")
	} else if g.MemoryKiB < 8*uint32(g.Parallelism) {
		v.add("accounts.argon2.memory_kib", "must be at least 8 × parallelism (%d)", 8*uint32(g.Parallelism))
	}
	if !g.AllowWeak && g.Iterations >= 1 {
		strong := false
		for _, row := range owaspArgon2 {
			if g.MemoryKiB >= row[0] && g.Iterations >= row[1] {
				strong = true
			}
		}
		if !strong {
			v.add("accounts.argon2", "memory_kib %d with iterations %d is below OWASP's minimum (19456 KiB with 2 iterations, or 47104/1, 12288/3, 9216/4, 7168/5); allow_weak: true is for tests only",
				g.MemoryKiB, g.Iterations)
		}
	}
	if a.RegisterMinSeconds < 0 {
		v.add("accounts.register_min_seconds", "must not be negative")
	}
	if v.positive("accounts.register_max_age", a.RegisterMaxAge) &&
		a.RegisterMaxAge.Duration() <= time.Duration(a.RegisterMinSeconds)*time.Second {
		v.add("accounts.register_max_age", "must be longer than register_min_seconds")
	}
	c := a.Captcha
	switch c.Provider {
	case "":
	case "hcaptcha", "turnstile", "recaptcha":
		if c.SiteKey == "" {
			v.add("accounts.captcha.site_key", "required with a captcha provider")
		}
		if c.SecretFile == "" {
			v.add("accounts.captcha.secret_file", "required with a captcha provider")
		} else {
			v.secret("accounts.captcha.secret_file", c.SecretFile)
		}
	default:
		v.add("accounts.captcha.provider", "%q is not one of hcaptcha, turnstile, recaptcha (or empty: off)", c.Provider)
	}
}

func (v *checker) sessions() {
	s := v.c.Sessions
	if v.positive("sessions.idle_timeout", s.IdleTimeout) && v.positive("sessions.absolute_lifetime", s.AbsoluteLifetime) &&
		s.AbsoluteLifetime < s.IdleTimeout {
		v.add("sessions.absolute_lifetime", "must not be shorter than idle_timeout (%s)", s.IdleTimeout)
	}
	t := v.c.Throttle
	if t.MaxFailures < 1 {
		v.add("throttle.max_failures", "must be at least 1")
	}
	if v.positive("throttle.wait_increment", t.WaitIncrement) && v.positive("throttle.max_wait", t.MaxWait) &&
		t.MaxWait < t.WaitIncrement {
		v.add("throttle.max_wait", "must not be shorter than wait_increment (%s)", t.WaitIncrement)
	}
	v.positive("throttle.reset_after", t.ResetAfter)
}

// --- helpers -------------------------------------------------------------

// derivedFromBadDomain reports whether the key at path was not set and so
// took its value from a missing or invalid virtual_domain, which is reported
// already.
func (v *checker) derivedFromBadDomain(path string) bool {
	return v.source(path) == "" && !validDomain(v.c.VirtualDomain, 2)
}

func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func (v *checker) positive(path string, d Duration) bool {
	if d <= 0 {
		v.add(path, "must be a positive duration such as \"30m\"")
		return false
	}
	return true
}

// hostPort checks host:port; an empty host means every address when
// emptyHostOK. Port 0 (pick a free one) is allowed for listeners.
func (v *checker) hostPort(path, s string, listener bool) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(path, "%q is not host:port, e.g. 127.0.0.1:8080", s)
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (!listener && n == 0) {
		v.add(path, "%q has no valid port", s)
		return false
	}
	if host == "" && !listener {
		v.add(path, "%q has no host", s)
		return false
	}
	return true
}

func (v *checker) prefixes(path string, list []string) {
	for i, s := range list {
		if _, err := netip.ParsePrefix(s); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(s); err == nil {
			continue
		}
		v.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a CIDR such as 10.0.0.0/8 (or a single address)", s)
	}
}

var (
	hostLabel    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	dkimSelector = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*$`)
	localPart    = regexp.MustCompile(`^[a-z0-9]([a-z0-9._+-]*[a-z0-9])?$`)
	urlSafeName  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)
)

// validDomain reports whether s is a DNS host name with at least minLabels
// labels (letters, digits, hyphens; not an IP address).
func validDomain(s string, minLabels int) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	labels := strings.Split(strings.ToLower(s), ".")
	if len(labels) < minLabels {
		return false
	}
	for _, l := range labels {
		if !hostLabel.MatchString(l) {
			return false
		}
	}
	_, err := strconv.Atoi(labels[len(labels)-1])
	return err != nil // an all-digit last label is an IP address
}

func (v *checker) domain(path, s string, minLabels int) {
	if !validDomain(s, minLabels) {
		v.add(path, "%q is not a valid domain name such as id.example.org", s)
	}
}

func isMailbox(s string) bool {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && validDomain(s[at+1:], 1)
}

func domainOf(addr string) string {
	return addr[strings.LastIndexByte(addr, '@')+1:]
}

func isLoopback(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(h, "[]"))
	return err == nil && ip.IsLoopback()
}

// parseWebURL parses an absolute http(s) URL; msg says what is wrong.
func parseWebURL(s string) (*url.URL, string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Sprintf("%q must be an absolute http or https URL", s)
	}
	return u, ""
}

// spURL checks a URL that a browser is sent to with protocol messages:
// https, or http to a loopback host (tests) or in --dev.
func (v *checker) spURL(path, s string) {
	u, msg := parseWebURL(s)
	if msg != "" {
		v.add(path, "must be an absolute https URL, found %q", s)
		return
	}
	if u.Scheme == "http" && !v.c.DevMode && !isLoopback(u.Hostname()) {
		v.add(path, "must be an absolute https URL (http only for loopback hosts), found %q", s)
	}
}

func (v *checker) name(path, s string, seen map[string]int, i int, list string) {
	switch {
	case s == "":
		v.add(path, "required")
	case !urlSafeName.MatchString(s):
		v.add(path, "%q must be URL-safe: letters, digits, '.', '-', '_', starting with a letter or digit", s)
	default:
		if j, dup := seen[s]; dup {
			v.add(path, "%q is also the name of %s[%d]", s, list, j)
		} else {
			seen[s] = i
		}
	}
}

// pair checks two files that go together (both or neither) and are readable.
func (v *checker) pair(path, ka, a, kb, b string) {
	switch {
	case a != "" && b == "":
		v.add(path+"."+kb, "required with %s", ka)
	case a == "" && b != "":
		v.add(path+"."+ka, "required with %s", kb)
	}
	if a != "" {
		v.readable(path+"."+ka, a)
	}
	if b != "" {
		v.readable(path+"."+kb, b)
	}
}

func (v *checker) readable(path, file string) {
	f, err := os.Open(file)
	if err != nil {
		v.add(path, "cannot read %s: %s", file, describeFileErr(err))
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		v.add(path, "%s is a folder, not a file", file)
		return
	}
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil {
		v.add(path, "cannot read %s: %s", file, describeFileErr(err))
	}
}

func (v *checker) secret(path, file string) ([]byte, bool) {
	b, err := ReadSecretFile(file)
	if err != nil {
		v.add(path, "%s", strings.TrimPrefix(err.Error(), "config: "))
		return nil, false
	}
	return b, true
}
