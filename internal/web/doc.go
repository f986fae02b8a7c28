// Package web serves idbridge's own pages: the portal, login and logout,
// registration and email verification, the account page, password reset, the
// admin pages, the dev outbox, health checks and the one stylesheet. It owns
// the route table (see routes in server.go), browser sessions and their
// cookies, CSRF protection, the client-IP rule for trusted proxies, and the
// message catalogue every user-visible string comes from.
//
// It translates HTTP into calls on internal/account, which keeps every account
// rule; it decides nothing about accounts itself.
//
// Standards and practice it follows:
//   - HTTP semantics (RFC 9110): 303 See Other after every successful POST,
//     Accept-Language (section 12.5.4) to pick a catalogue;
//   - cookies (RFC 6265bis): HttpOnly, SameSite=Lax, Secure whenever the base
//     URL is https;
//   - the OWASP CSRF prevention cheat sheet: an HMAC-signed double-submit
//     token bound to the session (or to a random pre-session cookie), plus
//     Fetch Metadata (Sec-Fetch-Site) and Origin checks through
//     net/http.CrossOriginProtection;
//   - X-Forwarded-For is believed only from trusted proxies, reading it from
//     the right and stopping at the first untrusted hop;
//   - WCAG 2.2: every input has a label, errors are tied to their field with
//     aria-describedby, no JavaScript anywhere (but in the optional captcha widget).
//
// Other parts of idbridge (SAML, OIDC, DiscourseConnect, /metrics) mount their
// handlers with Handle or HandleCrossSite and ask Current who is logged in.
package web
