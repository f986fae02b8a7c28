package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/store"
)

// Site is what a community configures about the look of the pages.
type Site struct {
	Name    string // shown in the header and page titles; default "idbridge"
	LogoURL string // optional; a local path or an https URL (allowed by the CSP)
	Color   string // the accent colour, a CSS hex colour such as "#0b6e4f"
}

// PortalLink is one service the portal page lists (a SAML launch URL, a
// forum, a wiki).
type PortalLink struct {
	Name        string
	URL         string
	Description string
}

// Captcha is a captcha provider for the registration form. nil turns it off.
type Captcha interface {
	// Widget returns the trusted HTML placed in the registration form.
	Widget(r *http.Request) template.HTML
	// Verify checks the answer in r's form; false refuses the registration.
	Verify(ctx context.Context, r *http.Request, clientIP string) (bool, error)
}

// Options configure a Server.
type Options struct {
	Accounts *account.Service // required
	Store    store.Store      // required: readiness, dev outbox
	Metrics  *metrics.Metrics // optional
	Log      *slog.Logger     // optional; default discards

	BaseURL        string         // required: http or https; https makes cookies Secure
	VirtualDomain  string         // shown in the registration hint ("you@<domain>"); optional
	Site           Site           // name, logo, colour
	TrustedProxies []netip.Prefix // X-Forwarded-For is believed only from these peers

	// Keys are HMAC keys for CSRF tokens and form timestamps, kept in the
	// store so every node agrees. The first signs; all verify (rotation).
	// Each must be at least 32 bytes.
	Keys [][]byte

	// RegisterMinAge and RegisterMaxAge bound the age of the registration
	// form when it is sent: faster is a bot, older is stale. Defaults 3 s
	// and 2 h; a negative RegisterMinAge turns the minimum off (tests).
	RegisterMinAge, RegisterMaxAge time.Duration
	Captcha                        Captcha // nil: off

	// Dev serves the outbox at /dev/mail (idbridge serve --dev only).
	Dev bool

	// Portal lists the services shown on "/" to a logged-in member. nil: none.
	Portal func(r *http.Request, a store.Account) []PortalLink

	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Server serves the pages. Create it with New; it is safe for concurrent use.
type Server struct {
	opts    Options
	acc     *account.Service
	st      store.Store
	met     *metrics.Metrics
	log     *slog.Logger
	keys    keyring
	secure  bool
	cat     *catalog
	tmpl    map[string]map[string]*template.Template // lang → page → template
	style   []byte
	styleV  string
	csp     string
	cop     *http.CrossOriginProtection
	mux     *http.ServeMux
	handler http.Handler

	// onLogout is called with the session id before a logout ends the
	// session; it returns where the browser goes next (a single-logout chain).
	onLogout func(ctx context.Context, sessionID, returnTo string) (string, error)
}

// OnLogout sets the function /logout calls before it ends a session, with the
// session id and the local path the member goes to afterwards; its result, if
// not empty, replaces that path (SAML front-channel single logout). Call it
// before serving.
func (s *Server) OnLogout(f func(ctx context.Context, sessionID, returnTo string) (string, error)) {
	s.onLogout = f
}

// New checks opts, parses and checks every template and the catalogue, and
// builds the route table. A missing template or catalogue key fails it.
func New(opts Options) (*Server, error) {
	var errs []error
	if opts.Accounts == nil {
		errs = append(errs, errors.New("web: Accounts is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("web: Store is required"))
	}
	base, err := url.Parse(opts.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		errs = append(errs, fmt.Errorf("web: BaseURL %q must be an http or https URL", opts.BaseURL))
	}
	if len(opts.Keys) == 0 {
		errs = append(errs, errors.New("web: at least one key is required"))
	}
	for i, k := range opts.Keys {
		if len(k) < 32 {
			errs = append(errs, fmt.Errorf("web: key %d is %d bytes, want at least 32", i, len(k)))
		}
	}
	if opts.Site.Name == "" {
		opts.Site.Name = "idbridge"
	}
	if opts.Site.Color == "" {
		opts.Site.Color = defaultColor
	}
	if !validColor(opts.Site.Color) {
		errs = append(errs, fmt.Errorf("web: site colour %q must be a hex colour like #0b6e4f", opts.Site.Color))
	}
	logoOrigin, err := logoSource(opts.Site.LogoURL)
	if err != nil {
		errs = append(errs, err)
	}
	if opts.RegisterMinAge == 0 {
		opts.RegisterMinAge = 3 * time.Second
	}
	if opts.RegisterMaxAge == 0 {
		opts.RegisterMaxAge = 2 * time.Hour
	}
	if opts.RegisterMaxAge < opts.RegisterMinAge {
		errs = append(errs, errors.New("web: RegisterMaxAge is below RegisterMinAge"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}

	s := &Server{
		opts:   opts,
		acc:    opts.Accounts,
		st:     opts.Store,
		met:    opts.Metrics,
		log:    opts.Log,
		keys:   keyring(opts.Keys),
		secure: base.Scheme == "https",
		mux:    http.NewServeMux(),
	}
	if s.cat, err = loadCatalog(assets); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.tmpl, err = parseTemplates(assets, s.cat); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	if s.style, s.styleV, err = renderStyle(assets, opts.Site.Color); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.csp = "default-src 'self'; frame-ancestors 'none'; base-uri 'self'"
	if logoOrigin != "" {
		s.csp += "; img-src 'self' " + logoOrigin
	}
	// A captcha widget loads its provider's script and frame.
	if c, ok := opts.Captcha.(interface{ Origins() []string }); ok {
		o := strings.Join(c.Origins(), " ")
		s.csp += "; script-src 'self' " + o + "; frame-src " + o + "; connect-src 'self' " + o + "; style-src 'self' " + o
	}
	s.cop = http.NewCrossOriginProtection()
	if err := s.cop.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.cop.SetDenyHandler(http.HandlerFunc(s.crossSiteDenied))
	s.routes()
	s.handler = s.observe(s.mux)
	return s, nil
}

// Handler returns the whole HTTP handler: every route, behind the request-id,
// logging, metrics and security-header middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Handle mounts h (SAML, OIDC, /metrics …) on the route table. Cross-site
// non-GET requests to it are refused, like those to the pages; h sets its own
// Content-Security-Policy if it needs another one. Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.cop.Handler(h))
}

// HandleCrossSite mounts a protocol endpoint that other sites legitimately
// POST to (SAML HTTP-POST binding at /saml/sso and /saml/slo, OIDC token
// endpoint): no Origin or Sec-Fetch-Site check. h is responsible for its own
// request authentication.
func (s *Server) HandleCrossSite(pattern string, h http.Handler) {
	s.mux.Handle(pattern, h)
}

// routes is the one route table of idbridge's own pages. Other parts add
// theirs through Handle and HandleCrossSite.
func (s *Server) routes() {
	// Portal, login and logout.
	s.page("GET /{$}", s.portal)
	s.page("GET /login", s.loginForm)
	s.page("POST /login", s.loginSubmit)
	s.page("GET /logout", s.logoutForm)
	s.page("POST /logout", s.logoutSubmit)

	// Registration and email verification.
	s.page("GET /register", s.registerForm)
	s.page("POST /register", s.registerSubmit)
	s.page("GET /register/done", s.registerDone)
	s.page("GET /verify", s.verifyForm)
	s.page("POST /verify", s.verifySubmit)
	s.page("GET /verify/resend", s.resendForm)
	s.page("POST /verify/resend", s.resendSubmit)

	// Forgotten password.
	s.page("GET /password/forgot", s.forgotForm)
	s.page("POST /password/forgot", s.forgotSubmit)
	s.page("GET /password/reset", s.resetForm)
	s.page("POST /password/reset", s.resetSubmit)

	// The member's own account.
	s.page("GET /account", s.member(s.accountPage))
	s.page("POST /account/profile", s.member(s.profileSubmit))
	s.page("POST /account/email", s.member(s.emailSubmit))
	s.page("POST /account/password", s.member(s.passwordSubmit))
	s.page("POST /account/sessions/end", s.member(s.endSessionSubmit))
	s.page("POST /account/delete", s.member(s.deleteSubmit))

	// Administration, for members of "admins".
	s.page("GET /admin/{$}", s.admin(s.adminHome))
	s.page("GET /admin/accounts", s.admin(s.adminAccounts))
	s.page("GET /admin/accounts/{username}", s.admin(s.adminAccount))
	s.page("POST /admin/accounts/{username}/lock", s.admin(s.adminLock))
	s.page("POST /admin/accounts/{username}/unlock", s.admin(s.adminUnlock))
	s.page("POST /admin/accounts/{username}/groups", s.admin(s.adminGroup))
	s.page("GET /admin/audit", s.admin(s.adminAudit))

	// The dev outbox (idbridge serve --dev).
	if s.opts.Dev {
		s.page("GET /dev/mail", s.devMail)
	}

	// Operations and assets.
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /static/style.css", s.styleCSS)

	// Everything else: a 404 page.
	s.page("/", s.notFound)
}

// page mounts one of idbridge's own pages. Every request whose method is not
// GET, HEAD or OPTIONS must come from this site (Sec-Fetch-Site, Origin) and
// carry a valid CSRF token; no handler can forget it.
func (s *Server) page(pattern string, h http.HandlerFunc) {
	s.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if err := s.cop.Check(r); err != nil {
				s.crossSiteDenied(w, r)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				s.renderError(w, r, http.StatusBadRequest, "error.bad_request")
				return
			}
			if !s.checkCSRF(r) {
				logger(r.Context()).Warn("csrf token refused", "path", r.URL.Path)
				s.renderError(w, r, http.StatusForbidden, "error.csrf")
				return
			}
		}
		h(w, r)
	}))
}

// maxFormBytes bounds a form body.
const maxFormBytes = 64 << 10

func (s *Server) crossSiteDenied(w http.ResponseWriter, r *http.Request) {
	logger(r.Context()).Warn("cross-site request refused", "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	s.renderError(w, r, http.StatusForbidden, "error.cross_site")
}

// member wraps a handler that needs a logged-in member; others go to the
// login page and come back (GET) or to the account page (POST).
func (s *Server) member(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := s.Current(r); !ok {
			back := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				back = defaultContinue
			}
			http.Redirect(w, r, s.LoginURL(back, false), http.StatusSeeOther)
			return
		}
		h(w, r)
	}
}

// admin wraps a handler for members of "admins"; other members get 403.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return s.member(func(w http.ResponseWriter, r *http.Request) {
		_, a, _ := s.Current(r)
		ok, err := s.acc.IsAdmin(r.Context(), a.ID)
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		if !ok {
			s.renderError(w, r, http.StatusForbidden, "error.forbidden")
			return
		}
		h(w, r)
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.st.Ping(ctx); err != nil {
		logger(ctx).Error("readiness: store unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "store unreachable\n")
		return
	}
	io.WriteString(w, "ok\n")
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusNotFound, "error.not_found")
}

func (s *Server) now() time.Time { return s.opts.Now() }
