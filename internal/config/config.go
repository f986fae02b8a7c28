// Package config loads, checks and describes idbridge's configuration: one YAML
// file (YAML 1.2 through gopkg.in/yaml.v3) with environment overrides.
//
// The order is fixed: built-in defaults, then the file, then the environment,
// then values derived from others (store from data_dir, srs_domain from
// virtual_domain …), then validation. Unknown keys in the file and unknown
// IDBRIDGE_* variables are errors. Validation never stops at the first
// mistake: it returns a *ValidationError listing every one, each prefixed with
// its key path (saml.service_providers[1].acs_url) and, when known, the line or
// the environment variable the value came from.
//
// Environment overrides are IDBRIDGE_ followed by the key path in capitals with
// "__" between levels: IDBRIDGE_BASE_URL, IDBRIDGE_HTTP__LISTEN,
// IDBRIDGE_MAIL_OUT__SMARTHOST__ADDRESS. Lists of strings are comma-separated
// (IDBRIDGE_HTTP__TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16); lists of
// structures (service providers, OIDC clients, Discourse sites) can only be set
// in the file. IDBRIDGE_CONFIG and IDBRIDGE_TEST_* are left to the caller.
//
// Paths named in the config are used as written: a relative path is relative to
// the working directory of the idbridge process, not to the config file.
// Secrets are never in Config itself: the config names files that hold them
// (password_file, secret_file), read with ReadSecretFile.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. The yaml tag of each field is its key;
// the comment says its default and meaning (docs/config.md lists them all).
type Config struct {
	// base_url: the public URL of the web front end, e.g. https://id.example.org.
	// Required. http or https, no query, no fragment, no trailing "/". The SAML
	// IdP entity id is {base_url}/saml/metadata and the OIDC issuer is exactly
	// base_url.
	BaseURL string `yaml:"base_url"`
	// virtual_domain: the domain of virtual addresses (<username>@<virtual_domain>),
	// e.g. id.example.org. Required; stored in lower case.
	VirtualDomain string `yaml:"virtual_domain"`
	// store: "sqlite:PATH" or "postgres://user@host/db" (pgx DSN, postgresql://
	// also accepted). Default: sqlite:{data_dir}/idbridge.db.
	Store string `yaml:"store" redact:"url"`
	// data_dir: holds the SQLite file (by default) and the local mail queue.
	// Default /var/lib/idbridge.
	DataDir string `yaml:"data_dir"`

	HTTP      HTTP        `yaml:"http"`
	DNS       DNS         `yaml:"dns"`
	MailOut   MailOut     `yaml:"mail_out"`
	Forward   Forward     `yaml:"forward"`
	SAML      SAML        `yaml:"saml"`
	OIDC      OIDC        `yaml:"oidc"`
	Discourse []Discourse `yaml:"discourse"`
	Site      Site        `yaml:"site"`
	Accounts  Accounts    `yaml:"accounts"`
	Sessions  Sessions    `yaml:"sessions"`
	Throttle  Throttle    `yaml:"throttle"`
	Tokens    Tokens      `yaml:"tokens"`
	Log       Log         `yaml:"log"`

	// DevMode is set only by Dev (serve --dev), never from YAML or the
	// environment: mail goes to the dev outbox instead of leaving the machine,
	// and http URLs are accepted everywhere.
	DevMode bool `yaml:"-"`

	// sources maps a key path to where its value came from ("line 12" or
	// "IDBRIDGE_HTTP__LISTEN"), so that validation errors can say so.
	sources map[string]string
}

// HTTP is the web front end (accounts pages, SAML, OIDC, DiscourseConnect,
// health and metrics).
type HTTP struct {
	// listen: host:port to listen on. Default 127.0.0.1:8080 (a reverse proxy
	// in front is expected).
	Listen string `yaml:"listen"`
	// trusted_proxies: CIDRs (or single addresses) whose X-Forwarded-For is
	// believed for the client IP. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// DNS is the resolver used by the mail forwarder (MX, SPF, DKIM lookups).
type DNS struct {
	// servers: resolvers as IP or IP:port (port 53 when absent). Default empty:
	// the system resolver. Tests point it at a local server.
	Servers []string `yaml:"servers"`
}

// Smarthost is an SMTP relay idbridge hands mail to (mail_out.smarthost,
// forward.smarthost).
type Smarthost struct {
	// address: host:port of the relay, e.g. smtp.example.org:587.
	Address string `yaml:"address"`
	// tls: required (STARTTLS, refuse without it), opportunistic (STARTTLS when
	// offered), none (plain text), implicit (TLS from the first byte, port 465).
	// Default required.
	TLS string `yaml:"tls"`
	// username: AUTH user name; empty means no AUTH. AUTH is never sent over a
	// clear connection except to a loopback address.
	Username string `yaml:"username"`
	// password_file: file holding the AUTH password (required with username).
	PasswordFile string `yaml:"password_file"`
}

// MailOut is mail idbridge itself writes: verification, reset, notices.
type MailOut struct {
	// from: the From header and envelope sender, e.g. "Example ID
	// <noreply@id.example.org>". Default "noreply@{virtual_domain}".
	From string `yaml:"from"`
	// smarthost: where that mail goes. address is required outside --dev.
	Smarthost Smarthost `yaml:"smarthost"`
	// rate_limit: mails to one address within a window (verification, reset,
	// notices), so the forms cannot mail-bomb someone.
	RateLimit RateLimit `yaml:"rate_limit"`
	// retry_lifetime: how long a mail that the smarthost deferred is retried
	// before it is dropped (and logged). Default 24h.
	RetryLifetime Duration `yaml:"retry_lifetime"`
}

// RateLimit bounds the mails sent to one address.
type RateLimit struct {
	// per_address: at most this many mails to one address per window. Default 5.
	PerAddress int `yaml:"per_address"`
	// window: the period per_address counts over. Default 1h.
	Window Duration `yaml:"window"`
}

// Forward is the mail forwarder for virtual addresses.
type Forward struct {
	// listen: host:port of the inbound SMTP server; "" runs no SMTP server
	// (when Postfix stays in front and uses socketmap_listen). Default 0.0.0.0:25.
	Listen string `yaml:"listen"`
	// hostname: the name in the SMTP greeting, EHLO and our Received header.
	// Default: virtual_domain.
	Hostname string `yaml:"hostname"`
	// tls: certificate for STARTTLS. Both files or neither; without them no
	// STARTTLS is offered (a generated certificate in --dev).
	TLS TLSFiles `yaml:"tls"`
	// operator_address: the real mailbox that postmaster@, abuse@ and the other
	// role addresses of the virtual domain go to. Required when the forwarder
	// or socketmap runs (outside --dev); must not be on the virtual domain.
	OperatorAddress string `yaml:"operator_address"`
	// allow: who may send to virtual addresses.
	Allow Allow `yaml:"allow"`
	// delivery: direct (to the recipient domain's MX) or smarthost
	// (forward.smarthost). Default direct.
	Delivery string `yaml:"delivery"`
	// smarthost: relay used when delivery is smarthost; its address is then required.
	Smarthost Smarthost `yaml:"smarthost"`
	// srs_domain: domain of SRS envelope senders. Default: virtual_domain.
	SRSDomain string `yaml:"srs_domain"`
	// srs_max_age: how long an SRS address stays valid for bounces. Default 21d.
	SRSMaxAge Duration `yaml:"srs_max_age"`
	// dkim: our optional second DKIM signature (d=virtual_domain; key in the store).
	DKIM DKIM `yaml:"dkim"`
	// socketmap_listen: host:port of the Postfix socketmap lookup server
	// (map name "virtual"). Default "": off.
	SocketmapListen string `yaml:"socketmap_listen"`
	// max_message_bytes: largest message accepted (SIZE), in bytes or with a
	// unit (KiB, MiB, GiB, KB, MB, GB). Default 25MiB.
	MaxMessageBytes ByteSize `yaml:"max_message_bytes"`
	// max_recipients: RCPT TO per message. Default 100.
	MaxRecipients int `yaml:"max_recipients"`
	// destination_concurrency: simultaneous deliveries to one recipient
	// domain (like Postfix's default_destination_concurrency_limit). Default 20.
	DestinationConcurrency int `yaml:"destination_concurrency"`
	// max_connections: simultaneous SMTP connections in total. Default 200.
	MaxConnections int `yaml:"max_connections"`
	// max_connections_per_ip: simultaneous SMTP connections per client IP. Default 20.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// command_timeout: idle time allowed between SMTP commands. Default 5m.
	CommandTimeout Duration `yaml:"command_timeout"`
	// data_timeout: longest silence allowed while the client sends the message
	// data (each read waits at most this long). Default 10m.
	DataTimeout Duration `yaml:"data_timeout"`
	// ip_ranges_refresh: how often allow.ip_ranges_urls are fetched again. Default 1h.
	IPRangesRefresh Duration `yaml:"ip_ranges_refresh"`
	// queue_lifetime: how long a deferred message is retried before a DSN goes
	// back to the sender. Default 120h (5 days).
	QueueLifetime Duration `yaml:"queue_lifetime"`
	// delivery_port: TCP port of direct delivery to MX hosts. Default 25.
	// For tests only: real MX hosts listen on 25.
	DeliveryPort int `yaml:"delivery_port"`
	// reserved_extra: local parts, besides the built-in role addresses
	// (postmaster, abuse, hostmaster, webmaster …), that go to operator_address.
	// Lower case. Default: none.
	ReservedExtra []string `yaml:"reserved_extra"`
}

// TLSFiles names a PEM certificate chain and its private key.
type TLSFiles struct {
	// cert_file: PEM certificate chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// key_file: PEM private key of the certificate.
	KeyFile string `yaml:"key_file"`
}

// Allow lists the senders the forwarder accepts mail from.
type Allow struct {
	// networks: client CIDRs (or single addresses) allowed to send. Default none.
	Networks []string `yaml:"networks"`
	// ip_ranges_files: Atlassian-style IP-ranges JSON files (items whose product
	// includes "email" and direction "egress"); reloaded when they change or on SIGHUP.
	IPRangesFiles []string `yaml:"ip_ranges_files"`
	// ip_ranges_urls: the same format fetched over http(s) every
	// forward.ip_ranges_refresh, e.g. https://ip-ranges.atlassian.com/.
	IPRangesURLs []string `yaml:"ip_ranges_urls" redact:"url"`
	// domains: senders whose MAIL FROM domain passes SPF, or whose message has a
	// passing DKIM signature with d= this domain or under it.
	Domains []string `yaml:"domains"`
}

// DKIM configures our own DKIM signature on forwarded mail.
type DKIM struct {
	// selector: the DKIM selector (s=); empty: no signature of ours. The key
	// is generated into the store; its DNS record is printed by `idbridge keys`.
	Selector string `yaml:"selector"`
}

// SAML is the SAML 2.0 identity provider.
type SAML struct {
	// key_file: optional PEM signing key to import into the store on first
	// start, with cert_file (both or neither). Default "": generated.
	KeyFile string `yaml:"key_file"`
	// cert_file: the PEM certificate of key_file.
	CertFile string `yaml:"cert_file"`
	// service_providers: the SPs that may ask for assertions.
	ServiceProviders []ServiceProvider `yaml:"service_providers"`
}

// ServiceProvider is one SAML service provider. Either metadata_file, or
// entity_id and acs_url (with the optional slo_url and certificate_file).
type ServiceProvider struct {
	// name: short URL-safe name, used in /saml/launch/{name}. Required, unique.
	Name string `yaml:"name"`
	// entity_id: the SP's entity id (a URI). Unique. With metadata_file it
	// picks the entity out of the metadata (optional there).
	EntityID string `yaml:"entity_id"`
	// acs_url: the registered AssertionConsumerService (HTTP-POST). https
	// (http only for loopback hosts or in --dev).
	ACSURL string `yaml:"acs_url"`
	// slo_url: optional SingleLogoutService URL.
	SLOURL string `yaml:"slo_url"`
	// certificate_file: optional PEM certificate that verifies this SP's
	// signed requests; requests must then be signed.
	CertificateFile string `yaml:"certificate_file"`
	// metadata_file: SP metadata XML instead of the keys above.
	MetadataFile string `yaml:"metadata_file"`
	// name_id: virtual_address | email | username | persistent (pairwise per
	// SP). Default virtual_address.
	NameID string `yaml:"name_id"`
	// attributes: atlassian (givenname, surname, claims/name = stable id) |
	// generic (email, names, username, groups). Default generic.
	Attributes string `yaml:"attributes"`
	// sign: response | assertion | both; at least what the metadata asks.
	// Default response.
	Sign string `yaml:"sign"`
	// default_relay_state: RelayState for IdP-initiated SSO (launch URLs),
	// e.g. https://example.atlassian.net. Optional.
	DefaultRelayState string `yaml:"default_relay_state"`
}

// OIDC is the OpenID Connect provider.
type OIDC struct {
	Clients []OIDCClient `yaml:"clients"`
}

// OIDCClient is one relying party.
type OIDCClient struct {
	// id: client_id. Required, unique, URL-safe.
	ID string `yaml:"id"`
	// secret_file: file holding the client secret. Empty: a public client
	// (PKCE required).
	SecretFile string `yaml:"secret_file"`
	// redirect_uris: exact redirect URIs allowed (https, or http on loopback).
	// At least one.
	RedirectURIs []string `yaml:"redirect_uris"`
}

// Discourse is one forum using DiscourseConnect.
type Discourse struct {
	// name: short URL-safe name. Required, unique.
	Name string `yaml:"name"`
	// url: the forum's base URL, e.g. https://talk.example.org.
	URL string `yaml:"url"`
	// secret_file: file holding the shared DiscourseConnect secret.
	SecretFile string `yaml:"secret_file"`
}

// Site is how the web pages present the community.
type Site struct {
	// name: shown in page titles and mails. Default "idbridge".
	Name string `yaml:"name"`
	// logo_url: absolute http(s) URL or a local path ("/static/logo.svg").
	// Default "": no logo.
	LogoURL string `yaml:"logo_url"`
	// color: accent colour, CSS hex "#rgb" or "#rrggbb". Default "#2f5d8a".
	Color string `yaml:"color"`
}

// Accounts are the rules of registration and passwords.
type Accounts struct {
	// reserved_usernames: lower-case names that cannot be registered, on top
	// of the built-in list (postmaster, abuse, admin, root …). Default none.
	ReservedUsernames []string `yaml:"reserved_usernames"`
	// unverified_ttl: an unverified registration expires after this and frees
	// its username and email. Default 48h.
	UnverifiedTTL Duration `yaml:"unverified_ttl"`
	// password_min_length: 8 to 128. Default 8.
	PasswordMinLength int `yaml:"password_min_length"`
	// argon2: argon2id parameters for new hashes; old hashes are upgraded at
	// the next login.
	Argon2 Argon2 `yaml:"argon2"`
	// register_min_seconds: a registration form sent back sooner than this
	// many seconds after it was served is refused (bots); 0 turns it off.
	// Default 3.
	RegisterMinSeconds int `yaml:"register_min_seconds"`
	// register_max_age: a registration form older than this is refused.
	// Default 1h.
	RegisterMaxAge Duration `yaml:"register_max_age"`
	// captcha: optional captcha on registration. Default off.
	Captcha Captcha `yaml:"captcha"`
}

// Argon2 holds argon2id parameters.
type Argon2 struct {
	// memory_kib: memory in KiB. Default 19456 (19 MiB).
	MemoryKiB uint32 `yaml:"memory_kib"`
	// iterations: time cost. Default 2.
	Iterations uint32 `yaml:"iterations"`
	// parallelism: lanes. Default 1.
	Parallelism uint8 `yaml:"parallelism"`
	// allow_weak: accept parameters below OWASP's minimum (m=19456,t=2 or an
	// equivalent row). For tests only. Default false.
	AllowWeak bool `yaml:"allow_weak"`
}

// Captcha configures the registration captcha.
type Captcha struct {
	// provider: "" (off) | hcaptcha | turnstile | recaptcha. Default "".
	Provider string `yaml:"provider"`
	// site_key: the public site key (required with a provider).
	SiteKey string `yaml:"site_key"`
	// secret_file: file holding the verification secret (required with a provider).
	SecretFile string `yaml:"secret_file"`
}

// Sessions bound the life of a web session.
type Sessions struct {
	// idle_timeout: a session unused this long ends. Default 30m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// absolute_lifetime: a session ends this long after login, used or not.
	// Default 10h. Not shorter than idle_timeout.
	AbsoluteLifetime Duration `yaml:"absolute_lifetime"`
}

// Throttle is the brute-force throttle on password attempts (login, reset,
// registration), per account and per client IP. It only slows attempts; it
// never ends sessions, blocks SSO or mail.
type Throttle struct {
	// max_failures: failures after which waits grow. Default 30.
	MaxFailures int `yaml:"max_failures"`
	// wait_increment: each further failure adds this much wait. Default 1m.
	WaitIncrement Duration `yaml:"wait_increment"`
	// max_wait: the wait never exceeds this. Default 15m.
	MaxWait Duration `yaml:"max_wait"`
	// reset_after: failures are forgotten after this long without one. Default 12h.
	ResetAfter Duration `yaml:"reset_after"`
}

// Tokens bound the life of mailed one-time links.
type Tokens struct {
	// verify_ttl: email verification link. Default 48h.
	VerifyTTL Duration `yaml:"verify_ttl"`
	// reset_ttl: password reset link (single use). Default 1h.
	ResetTTL Duration `yaml:"reset_ttl"`
}

// Log configures the process log (log/slog).
type Log struct {
	// level: debug | info | warn | error. Default info.
	Level string `yaml:"level"`
	// format: text | json. Default text.
	Format string `yaml:"format"`
}

// Default returns the built-in defaults. base_url and virtual_domain have
// none; values derived from other keys (store, srs_domain, mail_out.from,
// forward.hostname) are filled in by Load after the file and the environment.
func Default() *Config {
	smarthost := Smarthost{TLS: TLSRequired}
	return &Config{
		DataDir: "/var/lib/idbridge",
		HTTP:    HTTP{Listen: "127.0.0.1:8080"},
		MailOut: MailOut{
			Smarthost:     smarthost,
			RateLimit:     RateLimit{PerAddress: 5, Window: Hour},
			RetryLifetime: 24 * Hour,
		},
		Forward: Forward{
			Listen:                 "0.0.0.0:25",
			Delivery:               DeliveryDirect,
			Smarthost:              smarthost,
			SRSMaxAge:              21 * 24 * Hour,
			MaxMessageBytes:        25 * MiB,
			MaxRecipients:          100,
			DestinationConcurrency: 20,
			MaxConnections:         200,
			MaxConnectionsPerIP:    20,
			CommandTimeout:         5 * Minute,
			DataTimeout:            10 * Minute,
			IPRangesRefresh:        Hour,
			QueueLifetime:          120 * Hour,
			DeliveryPort:           25,
		},
		Site: Site{Name: "idbridge", Color: "#2f5d8a"},
		Accounts: Accounts{
			UnverifiedTTL:      48 * Hour,
			PasswordMinLength:  8,
			Argon2:             Argon2{MemoryKiB: 19456, Iterations: 2, Parallelism: 1},
			RegisterMinSeconds: 3,
			RegisterMaxAge:     Hour,
		},
		Sessions: Sessions{IdleTimeout: 30 * Minute, AbsoluteLifetime: 10 * Hour},
		Throttle: Throttle{MaxFailures: 30, WaitIncrement: Minute, MaxWait: 15 * Minute, ResetAfter: 12 * Hour},
		Tokens:   Tokens{VerifyTTL: 48 * Hour, ResetTTL: Hour},
		Log:      Log{Level: "info", Format: "text"},
	}
}

// Enum values.
const (
	TLSRequired      = "required"
	TLSOpportunistic = "opportunistic"
	TLSNone          = "none"
	TLSImplicit      = "implicit"

	DeliveryDirect    = "direct"
	DeliverySmarthost = "smarthost"

	NameIDVirtualAddress = "virtual_address"
	NameIDEmail          = "email"
	NameIDUsername       = "username"
	NameIDPersistent     = "persistent"

	AttributesAtlassian = "atlassian"
	AttributesGeneric   = "generic"

	SignResponse  = "response"
	SignAssertion = "assertion"
	SignBoth      = "both"
)

// DevHTTPListen and DevSMTPListen are where serve --dev listens by default.
const (
	DevHTTPListen = "127.0.0.1:8080"
	DevSMTPListen = "127.0.0.1:2525"
	DevDomain     = "id.localhost"
)

// Dev returns the configuration of `serve --dev`: virtual domain id.localhost,
// HTTP on 127.0.0.1:8080 with base_url to match, SQLite in dataDir, the
// forwarder on 127.0.0.1:2525, and DevMode set so that every mail goes to the
// dev outbox. After binding (--listen, port 0), call SetListen with the
// actual address. It is valid as returned.
func Dev(dataDir string) *Config {
	c := Default()
	c.DevMode = true
	c.VirtualDomain = DevDomain
	c.DataDir = dataDir
	c.Store = "sqlite:" + filepath.Join(dataDir, "idbridge.db")
	c.SetListen(DevHTTPListen)
	c.MailOut.From = "idbridge <noreply@" + DevDomain + ">"
	c.Forward.Listen = DevSMTPListen
	c.Forward.Hostname = "localhost"
	c.Forward.OperatorAddress = "operator@localhost"
	c.Forward.SRSDomain = DevDomain
	c.Forward.Allow.Networks = []string{"127.0.0.0/8", "::1/128"}
	c.Log.Level = "debug"
	return c
}

// SetListen sets http.listen to addr and base_url to http://addr, with an
// unspecified host (":8080", "0.0.0.0:8080") shown as 127.0.0.1. Meant for
// --dev, once the listener is bound.
func (c *Config) SetListen(addr string) {
	c.HTTP.Listen = addr
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.BaseURL = "http://" + addr
		return
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	c.BaseURL = "http://" + net.JoinHostPort(host, port)
}

// Load reads the YAML file at path (none when path is ""), applies the
// IDBRIDGE_* variables of environ (os.Environ() form), fills derived
// defaults and validates. Any mistake, in any step, is reported in one
// *ValidationError listing all of them.
func Load(path string, environ []string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	return Parse(data, environ)
}

// Parse is Load for a config already in memory (tests, stdin).
func Parse(data []byte, environ []string) (*Config, error) {
	c := Default()
	c.sources = map[string]string{}
	var errs []*Error
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		var root yaml.Node
		if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []*Error{{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
			errs = append(errs, &Error{Msg: "the file must hold exactly one YAML document", Source: fmt.Sprintf("line %d", extra.Line)})
		}
		d := decoder{sources: c.sources}
		d.decodeRoot(&root, c)
		errs = append(errs, d.errs...)
		if len(errs) == 0 {
			// Backstop: yaml.v3's own strict decoding must agree that every
			// key is known and every value fits.
			strict := yaml.NewDecoder(bytes.NewReader(data))
			strict.KnownFields(true)
			if err := strict.Decode(Default()); err != nil {
				errs = append(errs, &Error{Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
			}
		}
	}
	errs = append(errs, c.applyEnv(environ)...)
	c.fillDerived()
	// A key whose value could not be read keeps its default; do not also
	// report what validation thinks of that default.
	bad := map[string]bool{}
	for _, e := range errs {
		bad[e.Path] = true
	}
	if err := c.Validate(); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				if !bad[p.Path] {
					errs = append(errs, p)
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, &ValidationError{Problems: errs}
	}
	return c, nil
}

// ApplyEnv applies the IDBRIDGE_* overrides in environ (os.Environ() form) to c,
// e.g. to a Dev config. It does not validate.
func (c *Config) ApplyEnv(environ []string) error {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	if errs := c.applyEnv(environ); len(errs) > 0 {
		return &ValidationError{Problems: errs}
	}
	return nil
}

// fillDerived sets the defaults that depend on other keys, and normalises
// case where case carries no meaning.
func (c *Config) fillDerived() {
	c.VirtualDomain = strings.ToLower(c.VirtualDomain)
	if c.Store == "" && c.DataDir != "" {
		c.Store = "sqlite:" + filepath.Join(c.DataDir, "idbridge.db")
	}
	if c.VirtualDomain != "" {
		if c.Forward.SRSDomain == "" {
			c.Forward.SRSDomain = c.VirtualDomain
		}
		if c.Forward.Hostname == "" {
			c.Forward.Hostname = c.VirtualDomain
		}
		if c.MailOut.From == "" {
			c.MailOut.From = "noreply@" + c.VirtualDomain
		}
	}
	for i := range c.SAML.ServiceProviders {
		sp := &c.SAML.ServiceProviders[i]
		if sp.NameID == "" {
			sp.NameID = NameIDVirtualAddress
		}
		if sp.Attributes == "" {
			sp.Attributes = AttributesGeneric
		}
		if sp.Sign == "" {
			sp.Sign = SignResponse
		}
	}
}
