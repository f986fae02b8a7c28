package web

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/store"
)

// Cookie names (part of what operators see in a browser; keep them stable).
const (
	SessionCookie = "idbridge_session" // the member's session, value from account.StartSession
	CSRFCookie    = "idbridge_csrf"    // random value that binds the CSRF token of logged-out forms
)

// Current returns the session and account of the member who sent r, and false
// when nobody is logged in (no cookie, or a session that is unknown, expired,
// or belongs to a locked or unverified account). The answer is looked up once
// per request. SAML, OIDC and DiscourseConnect call it from their handlers.
func (s *Server) Current(r *http.Request) (store.Session, store.Account, bool) {
	st := stateOf(r.Context())
	if st == nil {
		return s.lookupSession(r)
	}
	st.sessOnce.Do(func() { st.sess, st.acct, st.loggedIn = s.lookupSession(r) })
	return st.sess, st.acct, st.loggedIn
}

func (s *Server) lookupSession(r *http.Request) (store.Session, store.Account, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 256 {
		return store.Session{}, store.Account{}, false
	}
	sess, acct, err := s.acc.Session(r.Context(), c.Value)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			logger(r.Context()).Error("session lookup", "err", err)
		}
		return store.Session{}, store.Account{}, false
	}
	return sess, acct, true
}

// forgetSession drops the per-request answer of Current, after a login or a
// logout changed it.
func forgetSession(r *http.Request) {
	if st := stateOf(r.Context()); st != nil {
		st.sessOnce.Do(func() {})
		st.sess, st.acct, st.loggedIn = store.Session{}, store.Account{}, false
	}
}

// rawSessionID is the store id of the session cookie r carries, valid or not
// (the CSRF token is bound to it); "" when there is none.
func rawSessionID(r *http.Request) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" || len(c.Value) > 256 {
		return ""
	}
	return account.SessionID(c.Value)
}

// LoginURL returns the local URL of the login page that sends the member on
// to continuePath afterwards (when it is a local path). force asks for the
// password again even when a session exists (SAML ForceAuthn, OIDC
// prompt=login, max_age).
func (s *Server) LoginURL(continuePath string, force bool) string {
	q := url.Values{}
	if continuePath != "" && localPath(continuePath) {
		q.Set("continue", continuePath)
	}
	if force {
		q.Set("force", "1")
	}
	if len(q) == 0 {
		return "/login"
	}
	return "/login?" + q.Encode()
}

// startSession logs a in: the old session of this browser (if any) ends, a
// new one starts, and its cookie is set.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, a store.Account) error {
	ctx := r.Context()
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && len(c.Value) <= 256 {
		if err := s.acc.Logout(ctx, c.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
			logger(ctx).Warn("end previous session", "err", err)
		}
	}
	value, _, err := s.acc.StartSession(ctx, a, s.clientIP(r), userAgent(r))
	if err != nil {
		return err
	}
	forgetSession(r)
	http.SetCookie(w, s.cookie(SessionCookie, value, 0))
	return nil
}

// endSession logs the browser out and clears its cookie.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && len(c.Value) <= 256 {
		if err := s.acc.Logout(r.Context(), c.Value); err != nil && !errors.Is(err, store.ErrNotFound) {
			logger(r.Context()).Warn("logout", "err", err)
		}
	}
	forgetSession(r)
	s.clearSessionCookie(w)
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(SessionCookie, "", -1))
}

// cookie builds a cookie with idbridge's attributes: HttpOnly, SameSite=Lax,
// Path=/, and Secure when the base URL is https. maxAge follows
// http.Cookie.MaxAge (0: a browser-session cookie, <0: delete it).
func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   maxAge,
	}
	if maxAge < 0 {
		c.Expires = time.Unix(1, 0)
	}
	return c
}

func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	return ua
}
