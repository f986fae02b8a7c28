package saml

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// Principal is the account an assertion is about, filled by the caller from
// the store. VirtualAddress must be derived from the immutable username.
type Principal struct {
	ID             string // stable account id: Atlassian's "name" claim, pairwise NameID input
	Username       string
	Email          string // real, verified email
	FirstName      string
	LastName       string
	VirtualAddress string // <username>@<virtual_domain>
	Groups         []string
	// LoadGroups, when set and Groups is nil, is called for the groups only
	// when an SP's attribute profile sends them (the Atlassian one does not),
	// so that most assertions cost no group lookup.
	LoadGroups func(context.Context) ([]string, error)
}

// Session is the caller's logged-in session.
type Session struct {
	ID           string
	AuthnInstant time.Time // when the member last typed their password
	Principal    Principal
	// Participants are the SPs already recorded for this session, as the
	// caller read them with the session (nil if it did not): an assertion
	// for one of them with the same values is not recorded again.
	Participants []Participant
}

// Participant is an SP that got an assertion in a session, remembered for
// single logout.
type Participant struct {
	SP           string // entity id
	NameID       string
	NameIDFormat string
	SessionIndex string
}

// Sessions is the web side: who is logged in, the login page, and the
// participants of each session.
type Sessions interface {
	// Current returns the member logged in on r: verified, not locked.
	Current(r *http.Request) (Session, bool)
	// LoginURL returns where to send the browser to log in and then come
	// back to continueURL (a local path). With forceAuthn the member must
	// type their password even if logged in.
	LoginURL(continueURL string, forceAuthn bool) string
	// End ends the session (single logout started by an SP).
	End(ctx context.Context, sessionID string) error
	// RecordParticipant remembers that the session got an assertion for p.SP.
	RecordParticipant(ctx context.Context, sessionID string, p Participant) error
	// Participants returns what RecordParticipant remembered.
	Participants(ctx context.Context, sessionID string) ([]Participant, error)
}

// Pending keeps requests in flight server-side, shared by all nodes.
type Pending interface {
	// Put stores value under key until expires; it fails if key exists.
	Put(ctx context.Context, key string, value []byte, expires time.Time) error
	// Take returns the value and deletes it, atomically; it fails when absent.
	Take(ctx context.Context, key string) ([]byte, error)
}

// KeyPair is a signing key and its certificate.
type KeyPair struct {
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// Keys gives the signing key and the certificates to publish.
type Keys interface {
	// Active is the key that signs.
	Active(ctx context.Context) (KeyPair, error)
	// Published are the certificates in metadata: active, next and not yet retired.
	Published(ctx context.Context) ([]*x509.Certificate, error)
}

// Options configures an IdP. BaseURL, Registry, Sessions, Pending, Keys and
// Secret are required.
type Options struct {
	BaseURL  string // e.g. https://id.example.org, without trailing slash
	Registry *Registry
	Sessions Sessions
	Pending  Pending
	Keys     Keys
	// Secret keys the pairwise persistent NameIDs and SessionIndex values;
	// at least 32 bytes, the same on every node, never changed (changing it
	// changes every persistent NameID).
	Secret []byte
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SessionLifetime sets SessionNotOnOrAfter; 8 hours when zero.
	SessionLifetime time.Duration
	// ErrorPage renders a refusal; plain text when nil. msg is safe to show.
	ErrorPage func(w http.ResponseWriter, r *http.Request, status int, msg string)
	// Issued, when set, is told of every assertion issued (the caller's
	// audit trail and metrics).
	Issued func(r *http.Request, sp string, p Principal)
}

// IdP is the SAML identity provider.
type IdP struct {
	base            string
	sps             *Registry
	sessions        Sessions
	pending         Pending
	keys            Keys
	secret          []byte
	log             *slog.Logger
	now             func() time.Time
	sessionLifetime time.Duration
	errorPage       func(w http.ResponseWriter, r *http.Request, status int, msg string)
	issued          func(r *http.Request, sp string, p Principal)
	mux             *http.ServeMux
}

// New checks o and returns an IdP.
func New(o Options) (*IdP, error) {
	var errs []error
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.HasSuffix(o.BaseURL, "/") || u.RawQuery != "" {
		errs = append(errs, errors.New("saml: base_url must be an absolute http(s) URL without trailing slash"))
	}
	if o.Registry == nil || o.Sessions == nil || o.Pending == nil || o.Keys == nil {
		errs = append(errs, errors.New("saml: Registry, Sessions, Pending and Keys are required"))
	}
	if len(o.Secret) < 32 {
		errs = append(errs, errors.New("saml: the pairwise secret must be at least 32 bytes"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	idp := &IdP{
		base: o.BaseURL, sps: o.Registry, sessions: o.Sessions, pending: o.Pending, keys: o.Keys,
		secret: bytes.Clone(o.Secret), log: o.Logger, now: o.Now,
		sessionLifetime: o.SessionLifetime, errorPage: o.ErrorPage, issued: o.Issued,
	}
	if idp.log == nil {
		idp.log = slog.New(slog.DiscardHandler)
	}
	if idp.now == nil {
		idp.now = time.Now
	}
	if idp.sessionLifetime == 0 {
		idp.sessionLifetime = 8 * time.Hour
	}
	idp.mux = http.NewServeMux()
	idp.mux.HandleFunc("GET /saml/metadata", idp.ServeMetadata)
	idp.mux.HandleFunc("/saml/sso", idp.ServeSSO)
	idp.mux.HandleFunc("/saml/slo", idp.ServeSLO)
	idp.mux.HandleFunc("GET /saml/launch/{name}", idp.ServeLaunch)
	return idp, nil
}

func (idp *IdP) entityID() string { return idp.base + "/saml/metadata" }
func (idp *IdP) ssoURL() string   { return idp.base + "/saml/sso" }
func (idp *IdP) sloURL() string   { return idp.base + "/saml/slo" }

// EntityID is the IdP entity id, {base_url}/saml/metadata.
func (idp *IdP) EntityID() string { return idp.entityID() }

// Handler serves /saml/metadata, /saml/sso, /saml/slo and /saml/launch/{name}.
// Mount it at "/saml/" of the main mux, or register the Serve* methods one
// by one.
func (idp *IdP) Handler() http.Handler { return idp.mux }

// LaunchLink is one service provider on the portal page.
type LaunchLink struct {
	Name string // the SP's name
	URL  string // local path, /saml/launch/{name}
}

// Portal lists the service providers p can launch (IdP-initiated SSO).
func (idp *IdP) Portal(p Principal) []LaunchLink {
	var out []LaunchLink
	for _, sp := range idp.sps.All() {
		if _, ok := sp.defaultACS(); !ok {
			continue
		}
		if _, _, err := idp.nameID(sp, p); err != nil {
			continue
		}
		out = append(out, LaunchLink{Name: sp.Name, URL: "/saml/launch/" + sp.Name})
	}
	return out
}

// fail answers a refusal (4xx, message safe to show) or an internal error.
func (idp *IdP) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusBadRequest, "SAML request refused: "
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		msg += ref.msg
		idp.log.WarnContext(r.Context(), "saml request refused", "path", r.URL.Path, "reason", ref.msg)
	case errors.Is(err, errTooLarge), errors.Is(err, errDTD):
		msg += err.Error()
		idp.log.WarnContext(r.Context(), "saml request refused", "path", r.URL.Path, "reason", err.Error())
	default:
		status, msg = http.StatusInternalServerError, "Internal error; please try again later."
		idp.log.ErrorContext(r.Context(), "saml", "path", r.URL.Path, "err", err)
	}
	if idp.errorPage != nil {
		idp.errorPage(w, r, status, msg)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, status)
}

// pendingAuthn is a checked AuthnRequest kept across the login.
type pendingAuthn struct {
	SP         string    `json:"sp"`
	RequestID  string    `json:"id"`
	ACS        string    `json:"acs"`
	RelayState string    `json:"rs,omitempty"`
	ForceAuthn bool      `json:"force,omitempty"`
	IsPassive  bool      `json:"passive,omitempty"`
	Received   time.Time `json:"received"`
}

const (
	pendingTTL   = 30 * time.Minute
	keySSOPrefix = "saml-sso:"
	keySLOPrefix = "saml-slo:"
	keyLogPrefix = "saml-logout:"
)

// stash stores v under a fresh opaque id and returns the id.
func (idp *IdP) stash(ctx context.Context, prefix string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	id := newID()[1:]
	if err := idp.pending.Put(ctx, prefix+id, b, idp.now().Add(pendingTTL)); err != nil {
		return "", err
	}
	return id, nil
}

// unstash takes what stash stored; a malformed, unknown or used id is a refusal.
func (idp *IdP) unstash(ctx context.Context, prefix, id string, v any) error {
	if len(id) != 40 {
		return refuse("unknown or expired continuation; start again from the service")
	}
	if _, err := hex.DecodeString(id); err != nil {
		return refuse("unknown or expired continuation; start again from the service")
	}
	b, err := idp.pending.Take(ctx, prefix+id)
	if err != nil {
		return refuse("unknown or expired continuation; start again from the service")
	}
	return json.Unmarshal(b, v)
}

// ServeSSO is /saml/sso: an AuthnRequest by HTTP-Redirect (GET) or HTTP-POST.
// A POST is never answered directly: it arrives cross-site without the
// SameSite=Lax session cookie, so the checked request is kept server-side
// and the browser continues with a GET on our own origin (303).
func (idp *IdP) ServeSSO(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method == http.MethodGet && r.URL.Query().Has("continue") {
		var p pendingAuthn
		if err := idp.unstash(ctx, keySSOPrefix, r.URL.Query().Get("continue"), &p); err != nil {
			idp.fail(w, r, err)
			return
		}
		idp.finishSSO(w, r, p)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	in, err := readInbound(w, r)
	if err != nil {
		idp.fail(w, r, refuse("%v", err))
		return
	}
	req, err := idp.parseAuthnRequest(in)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	p := pendingAuthn{
		SP: req.SP.EntityID, RequestID: req.ID, ACS: req.ACS.Location, RelayState: req.RelayState,
		ForceAuthn: req.ForceAuthn, IsPassive: req.IsPassive, Received: idp.now(),
	}
	if r.Method == http.MethodPost {
		id, err := idp.stash(ctx, keySSOPrefix, p)
		if err != nil {
			idp.fail(w, r, err)
			return
		}
		http.Redirect(w, r, "/saml/sso?continue="+id, http.StatusSeeOther)
		return
	}
	idp.finishSSO(w, r, p)
}

// finishSSO answers a checked AuthnRequest on a request that carries the
// session cookie: a Response, or the login page first.
func (idp *IdP) finishSSO(w http.ResponseWriter, r *http.Request, p pendingAuthn) {
	ctx := r.Context()
	sp, ok := idp.sps.ByEntityID(p.SP)
	if !ok || !slices.ContainsFunc(sp.ACS, func(e Endpoint) bool { return e.Location == p.ACS }) {
		// The config changed while the member was logging in.
		idp.fail(w, r, refuse("unknown service provider or ACS; start again from the service"))
		return
	}
	s, ok := idp.sessions.Current(r)
	fresh := ok && (!p.ForceAuthn || !s.AuthnInstant.Before(p.Received))
	if !fresh {
		if p.IsPassive {
			resp, err := idp.buildErrorResponse(ctx, p.ACS, p.RequestID, StatusResponder, StatusNoPassive)
			if err != nil {
				idp.fail(w, r, err)
				return
			}
			idp.postMessage(w, r, sp, p.ACS, "SAMLResponse", resp, p.RelayState)
			return
		}
		id, err := idp.stash(ctx, keySSOPrefix, p)
		if err != nil {
			idp.fail(w, r, err)
			return
		}
		http.Redirect(w, r, idp.sessions.LoginURL("/saml/sso?continue="+id, p.ForceAuthn), http.StatusSeeOther)
		return
	}
	idp.issue(w, r, sp, p.ACS, p.RequestID, p.RelayState, s)
}

// ServeLaunch is /saml/launch/{name}: IdP-initiated SSO with the SP's
// default_relay_state.
func (idp *IdP) ServeLaunch(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" {
		name = strings.TrimPrefix(r.URL.Path, "/saml/launch/")
	}
	sp, ok := idp.sps.ByName(name)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s, ok := idp.sessions.Current(r)
	if !ok {
		http.Redirect(w, r, idp.sessions.LoginURL("/saml/launch/"+sp.Name, false), http.StatusSeeOther)
		return
	}
	acs, ok := sp.defaultACS()
	if !ok {
		idp.fail(w, r, refuse("%s has no HTTP-POST AssertionConsumerService", sp.Name))
		return
	}
	idp.issue(w, r, sp, acs.Location, "", sp.DefaultRelayState, s)
}

// issue builds, records and posts a Response for s to sp.
func (idp *IdP) issue(w http.ResponseWriter, r *http.Request, sp *ServiceProvider, acs, inResponseTo, relayState string, s Session) {
	ctx := r.Context()
	res, err := idp.buildResponse(ctx, sp, acs, inResponseTo, s)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	// Remember the participant before the assertion leaves: a lost record
	// would leave the SP out of single logout.
	if !slices.Contains(s.Participants, res.Participant) {
		if err := idp.sessions.RecordParticipant(ctx, s.ID, res.Participant); err != nil {
			idp.fail(w, r, err)
			return
		}
	}
	idp.log.InfoContext(ctx, "saml assertion issued", "audit", true, "sp", sp.Name,
		"account", s.Principal.ID, "username", s.Principal.Username, "unsolicited", inResponseTo == "")
	if idp.issued != nil {
		idp.issued(r, sp.Name, s.Principal)
	}
	idp.postMessage(w, r, sp, acs, "SAMLResponse", res.Response, relayState)
}

//go:embed templates/post.html
var templatesFS embed.FS

var postTemplate = template.Must(template.ParseFS(templatesFS, "templates/post.html"))

// postScript auto-submits the form; the page works without it.
const postScript = `document.getElementById('saml').submit();`

var postScriptHash = func() string {
	h := sha256.Sum256([]byte(postScript))
	return base64.StdEncoding.EncodeToString(h[:])
}()

// postMessage renders the HTTP-POST binding page for msg: an HTML-escaped
// form with a visible button, submitted by a hash-pinned script when
// JavaScript runs.
func (idp *IdP) postMessage(w http.ResponseWriter, r *http.Request, sp *ServiceProvider, action, param string, msg *etree.Element, relayState string) {
	value, err := encodeXML(msg)
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	// The message is base64, whose alphabet needs no escaping inside a
	// quoted attribute: it goes in after the template ran, which spares
	// html/template escaping 8 KB on every assertion (its '+' as &#43;).
	if !isBase64(value) {
		idp.fail(w, r, errors.New("saml: encoded message is not base64"))
		return
	}
	var buf bytes.Buffer
	err = postTemplate.Execute(&buf, map[string]any{
		"Target": sp.Name, "Action": action, "Param": param, "Value": postValueMark,
		"RelayState": relayState, "Script": template.JS(postScript),
	})
	if err != nil {
		idp.fail(w, r, err)
		return
	}
	page := bytes.Replace(buf.Bytes(), []byte(postValueMark), []byte(value), 1)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'sha256-"+postScriptHash+"'; base-uri 'none'; frame-ancestors 'none'")
	w.Write(page)
}

// postValueMark stands in the template for the message value.
const postValueMark = "SAML-MESSAGE-VALUE"

func isBase64(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}
