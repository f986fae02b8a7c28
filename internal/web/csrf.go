package web

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// csrfField is the name of the hidden form field that carries the token.
const csrfField = "csrf"

// csrfToken returns the CSRF token for the forms of the page being rendered.
// For a logged-in member it is an HMAC of the session id; otherwise an HMAC of
// a random idbridge_csrf cookie, which is set here when the browser has none
// (a double submit whose token cannot be forged without the server's key).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if _, _, ok := s.Current(r); ok {
		return s.keys.token("csrf", "session\x00"+rawSessionID(r))
	}
	v := anonCSRFValue(r)
	if v == "" {
		v = randomToken()
		http.SetCookie(w, s.cookie(CSRFCookie, v, 0))
		// A second form on the same page must get the same value.
		r.AddCookie(&http.Cookie{Name: CSRFCookie, Value: v})
	}
	return s.keys.token("csrf", "anon\x00"+v)
}

// checkCSRF reports whether the form of r carries a token bound to the
// browser's session cookie or to its idbridge_csrf cookie. The session cookie
// need not be valid any more: a session that expired while the form was open
// then reaches the handler, which sends the member to the login page.
func (s *Server) checkCSRF(r *http.Request) bool {
	tok := r.PostFormValue(csrfField)
	if tok == "" || len(tok) > 100 {
		return false
	}
	ok := false
	if id := rawSessionID(r); id != "" && s.keys.verify("csrf", "session\x00"+id, tok) {
		ok = true
	}
	for _, c := range r.CookiesNamed(CSRFCookie) {
		if len(c.Value) == anonCSRFLen && s.keys.verify("csrf", "anon\x00"+c.Value, tok) {
			ok = true
		}
	}
	return ok
}

// anonCSRFLen is the length of randomToken's value: 32 bytes in base64url.
const anonCSRFLen = 43

// anonCSRFValue returns the browser's first well-formed idbridge_csrf cookie.
func anonCSRFValue(r *http.Request) string {
	for _, c := range r.CookiesNamed(CSRFCookie) {
		if len(c.Value) == anonCSRFLen {
			return c.Value
		}
	}
	return ""
}

// randomToken returns 32 random bytes in base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
