package web

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/idbridge/idbridge/internal/account"
)

// Notices a page shows after a redirect (?done=…), by page: only these keys
// are shown, so the parameter cannot put arbitrary text on a page.
var doneNotices = map[string]map[string]string{
	"/login": {
		"logout":   "notice.logged_out",
		"reset":    "notice.password_reset",
		"verified": "notice.email_verified",
	},
	"/account": {
		"profile":  "notice.profile_saved",
		"email":    "notice.email_change_sent",
		"password": "notice.password_changed",
		"session":  "notice.session_ended",
		"verified": "notice.email_verified",
		"locked":   "notice.locked",
		"unlocked": "notice.unlocked",
	},
	"/": {
		"deleted": "notice.account_deleted",
		"logout":  "notice.logged_out",
	},
	"/admin/accounts/": {
		"locked":   "notice.locked",
		"unlocked": "notice.unlocked",
		"group":    "notice.group_saved",
	},
}

func doneNotice(page string, r *http.Request) string {
	return doneNotices[page][r.URL.Query().Get("done")]
}

// Portal.

type portalData struct {
	Links []PortalLink
}

func (s *Server) portal(w http.ResponseWriter, r *http.Request) {
	var d portalData
	if _, a, ok := s.Current(r); ok && s.opts.Portal != nil {
		for _, l := range s.opts.Portal(r, a) {
			if safeLinkURL(l.URL) {
				d.Links = append(d.Links, l)
			}
		}
	}
	s.render(w, r, http.StatusOK, "portal", "portal.title", &view{D: d, Flash: doneNotice("/", r)})
}

// safeLinkURL accepts local paths and http(s) URLs for portal links.
func safeLinkURL(u string) bool {
	if localPath(u) {
		return true
	}
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != ""
}

// Login.

type loginData struct {
	Force       bool
	Unverified  bool   // the password was right but the email is not verified yet
	ResendLogin string // prefill for the resend link
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cont := continueTarget(q.Get("continue"))
	force := q.Get("force") == "1"
	f := newForm("")
	if _, a, ok := s.Current(r); ok {
		if !force {
			redirect(w, r, cont)
			return
		}
		f.Values["login"] = a.Username
	}
	f.Values["continue"] = cont
	s.render(w, r, http.StatusOK, "login", "login.title", &view{
		Form: f, D: loginData{Force: force}, Flash: doneNotice("/login", r),
	})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	login := strings.TrimSpace(r.PostFormValue("login"))
	pw := r.PostFormValue("password")
	cont := continueTarget(r.PostFormValue("continue"))
	force := r.PostFormValue("force") == "1"

	f := newForm("", "login", "password")
	f.Values["login"] = login
	f.Values["continue"] = cont
	d := loginData{Force: force}
	if login == "" {
		f.set("login", "login.required")
	}
	if pw == "" {
		f.set("password", "password.required")
	}
	if f.Failed() {
		s.render(w, r, http.StatusUnprocessableEntity, "login", "login.title", &view{Form: f, D: d})
		return
	}
	a, err := s.acc.Login(r.Context(), login, pw, s.clientIP(r), userAgent(r))
	switch {
	case errors.Is(err, account.ErrInvalidCredentials):
		f.Error = "login.invalid"
		s.render(w, r, http.StatusUnprocessableEntity, "login", "login.title", &view{Form: f, D: d})
		return
	case errors.Is(err, account.ErrNotVerified):
		f.Error = "login.unverified"
		d.Unverified, d.ResendLogin = true, login
		s.render(w, r, http.StatusUnprocessableEntity, "login", "login.title", &view{Form: f, D: d})
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	if err := s.startSession(w, r, a); err != nil {
		s.serverError(w, r, err)
		return
	}
	redirect(w, r, cont)
}

// Logout.

func (s *Server) logoutForm(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.Current(r); !ok {
		s.renderMessage(w, r, http.StatusOK, "logout.title", "logout.already",
			link{"nav.login", "/login"})
		return
	}
	f := newForm("")
	if c := r.URL.Query().Get("continue"); localPath(c) {
		f.Values["continue"] = c
	}
	s.render(w, r, http.StatusOK, "logout", "logout.title", &view{Form: f})
}

func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	next := withDone("/login", "logout")
	if c := r.PostFormValue("continue"); localPath(c) {
		next = c
	}
	// Single logout: the services that got an assertion in this session are
	// told before the session ends (their list is kept on the session).
	if sess, _, ok := s.Current(r); ok && s.onLogout != nil {
		if n, err := s.onLogout(r.Context(), sess.ID, next); err != nil {
			logger(r.Context()).Warn("single logout", "err", err)
		} else if n != "" {
			next = n
		}
	}
	s.endSession(w, r)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// Registration.

// honeypotField is the registration field people never see: it is moved off
// screen by the stylesheet, skipped by the keyboard, and labelled "leave this
// field empty" for screen readers. Bots that fill every field fill it.
const honeypotField = "homepage"

type registerData struct {
	FormTime      string
	VirtualDomain string
	Captcha       any
}

var registerFields = []string{"username", "first_name", "last_name", "email", "password", "password_confirm"}

func (s *Server) registerForm(w http.ResponseWriter, r *http.Request) {
	if _, _, ok := s.Current(r); ok {
		redirect(w, r, defaultContinue)
		return
	}
	s.renderRegister(w, r, http.StatusOK, newForm(""), s.newFormTime(s.now()))
}

func (s *Server) renderRegister(w http.ResponseWriter, r *http.Request, status int, f *form, ts string) {
	d := registerData{FormTime: ts, VirtualDomain: s.opts.VirtualDomain}
	if s.opts.Captcha != nil {
		d.Captcha = s.opts.Captcha.Widget(r)
	}
	s.render(w, r, status, "register", "register.title", &view{Form: f, D: d})
}

func (s *Server) registerSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	log := logger(ctx)
	ip := s.clientIP(r)
	f := newForm("", registerFields...)
	for _, k := range registerFields[:4] {
		f.Values[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("password_confirm")

	if r.PostFormValue(honeypotField) != "" {
		// Look exactly like a success: a bot learns nothing.
		log.Info("registration refused: honeypot filled", "client", ip)
		s.countRegistration("spam")
		redirect(w, r, "/register/done")
		return
	}
	ts := r.PostFormValue("ts")
	switch s.checkFormTime(ts, s.now()) {
	case formTimeTooFast:
		f.Error = "register.too_fast"
	case formTimeTooOld:
		f.Error = "register.too_old"
	case formTimeInvalid:
		f.Error = "register.form_invalid"
	}
	if f.Error != "" {
		log.Info("registration refused: form timestamp", "reason", f.Error, "client", ip)
		s.countRegistration("spam")
		s.renderRegister(w, r, http.StatusUnprocessableEntity, f, s.newFormTime(s.now()))
		return
	}
	if s.opts.Captcha != nil {
		ok, err := s.opts.Captcha.Verify(ctx, r, ip)
		if err != nil {
			log.Error("captcha", "err", err)
		}
		if !ok {
			f.Error = "register.captcha"
			s.countRegistration("spam")
			s.renderRegister(w, r, http.StatusUnprocessableEntity, f, ts)
			return
		}
	}
	if pw != confirm {
		f.set("password_confirm", "password.mismatch")
		s.renderRegister(w, r, http.StatusUnprocessableEntity, f, ts)
		return
	}
	err := s.acc.Register(ctx, account.RegisterInput{
		Username: f.Values["username"], FirstName: f.Values["first_name"], LastName: f.Values["last_name"],
		Email: f.Values["email"], Password: pw, IP: ip,
	})
	switch {
	case err == nil:
		redirect(w, r, "/register/done")
		return
	case errors.Is(err, account.ErrThrottled):
		f.Error = "error.throttled"
		s.renderRegister(w, r, http.StatusTooManyRequests, f, ts)
		return
	case s.applyValidation(f, err, registerFields, nil):
	default:
		s.serverError(w, r, err)
		return
	}
	s.renderRegister(w, r, http.StatusUnprocessableEntity, f, ts)
}

func (s *Server) countRegistration(result string) {
	if s.met != nil {
		s.met.Registrations.WithLabelValues(result).Inc()
	}
}

func (s *Server) registerDone(w http.ResponseWriter, r *http.Request) {
	s.renderMessage(w, r, http.StatusOK, "register_done.title", "register_done.text",
		link{"register_done.resend", "/verify/resend"})
}

// Email verification. GET only shows a button: link scanners in mail
// systems fetch links, and must not use up the token.

type tokenData struct {
	Token   string
	Invalid bool
	Message string // catalogue key of why the link is refused ("" : the generic one)
}

func (s *Server) verifyForm(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if tok == "" || len(tok) > 200 {
		s.render(w, r, http.StatusBadRequest, "verify", "verify.title", &view{D: tokenData{Invalid: true}})
		return
	}
	s.render(w, r, http.StatusOK, "verify", "verify.title", &view{D: tokenData{Token: tok}})
}

func (s *Server) verifySubmit(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	_, err := s.acc.VerifyEmail(r.Context(), tok, s.clientIP(r))
	switch {
	case errors.Is(err, account.ErrEmailInUse):
		s.render(w, r, http.StatusUnprocessableEntity, "verify", "verify.title",
			&view{D: tokenData{Invalid: true, Message: "verify.email_in_use"}})
		return
	case errors.Is(err, account.ErrInvalidToken):
		s.render(w, r, http.StatusUnprocessableEntity, "verify", "verify.title", &view{D: tokenData{Invalid: true}})
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	if _, _, ok := s.Current(r); ok {
		redirect(w, r, withDone("/account", "verified"))
		return
	}
	redirect(w, r, withDone("/login", "verified"))
}

func (s *Server) resendForm(w http.ResponseWriter, r *http.Request) {
	f := newForm("")
	if l := r.URL.Query().Get("login"); len(l) <= 254 {
		f.Values["login"] = l
	}
	s.render(w, r, http.StatusOK, "verify_resend", "verify_resend.title", &view{Form: f})
}

func (s *Server) resendSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm("")
	login := strings.TrimSpace(r.PostFormValue("login"))
	f.Values["login"] = login
	if login == "" {
		f.set("login", "login.required")
		s.render(w, r, http.StatusUnprocessableEntity, "verify_resend", "verify_resend.title", &view{Form: f})
		return
	}
	err := s.acc.ResendVerification(r.Context(), login, s.clientIP(r))
	switch {
	case errors.Is(err, account.ErrThrottled):
		f.Error = "error.throttled"
		s.render(w, r, http.StatusTooManyRequests, "verify_resend", "verify_resend.title", &view{Form: f})
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	s.renderMessage(w, r, http.StatusOK, "verify_resend.title", "verify_resend.sent",
		link{"nav.login", "/login"})
}

// Forgotten password.

func (s *Server) forgotForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "forgot", "forgot.title", &view{Form: newForm("")})
}

func (s *Server) forgotSubmit(w http.ResponseWriter, r *http.Request) {
	f := newForm("")
	login := strings.TrimSpace(r.PostFormValue("login"))
	f.Values["login"] = login
	if login == "" || len(login) > 254 {
		f.set("login", "login.required")
		s.render(w, r, http.StatusUnprocessableEntity, "forgot", "forgot.title", &view{Form: f})
		return
	}
	err := s.acc.RequestReset(r.Context(), login, s.clientIP(r))
	switch {
	case errors.Is(err, account.ErrThrottled):
		f.Error = "error.throttled"
		s.render(w, r, http.StatusTooManyRequests, "forgot", "forgot.title", &view{Form: f})
		return
	case err != nil:
		s.serverError(w, r, err)
		return
	}
	s.renderMessage(w, r, http.StatusOK, "forgot.title", "forgot.sent", link{"nav.login", "/login"})
}

var resetFields = []string{"password", "password_confirm"}

func (s *Server) resetForm(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	if tok == "" || len(tok) > 200 {
		s.render(w, r, http.StatusBadRequest, "reset", "reset.title", &view{D: tokenData{Invalid: true}})
		return
	}
	s.render(w, r, http.StatusOK, "reset", "reset.title", &view{Form: newForm(""), D: tokenData{Token: tok}})
}

func (s *Server) resetSubmit(w http.ResponseWriter, r *http.Request) {
	tok := r.PostFormValue("token")
	pw, confirm := r.PostFormValue("password"), r.PostFormValue("password_confirm")
	f := newForm("", resetFields...)
	d := tokenData{Token: tok}
	if pw != confirm {
		f.set("password_confirm", "password.mismatch")
		s.render(w, r, http.StatusUnprocessableEntity, "reset", "reset.title", &view{Form: f, D: d})
		return
	}
	_, err := s.acc.ResetPassword(r.Context(), tok, pw, s.clientIP(r))
	switch {
	case err == nil:
	case errors.Is(err, account.ErrInvalidToken):
		s.render(w, r, http.StatusUnprocessableEntity, "reset", "reset.title", &view{D: tokenData{Invalid: true}})
		return
	case s.applyValidation(f, err, resetFields, nil):
		s.render(w, r, http.StatusUnprocessableEntity, "reset", "reset.title", &view{Form: f, D: d})
		return
	default:
		s.serverError(w, r, err)
		return
	}
	// Every session of the account ended; this browser's cookie is stale.
	s.endSession(w, r)
	redirect(w, r, withDone("/login", "reset"))
}
