package web

import (
	"bytes"
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

func TestCSRFRejection(t *testing.T) {
	e := newEnv(t)
	e.createUser("bob", "bob@example.org", "bobs secret pw", false)
	b := e.browser()
	tok := html_csrf(t, b.get("/login").body)
	creds := func(csrf string) url.Values {
		return url.Values{"login": {"bob"}, "password": {"bobs secret pw"}, "csrf": {csrf}}
	}
	other := e.browser()
	otherTok := html_csrf(t, other.get("/login").body)

	cases := []struct {
		name string
		v    url.Values
		hdr  []string
		want string
	}{
		{"missing token", creds(""), nil, "This form has expired"},
		{"wrong token", creds("AAAA" + tok[4:]), nil, "This form has expired"},
		{"another browser's token", creds(otherTok), nil, "This form has expired"},
		{"cross-site Origin", creds(tok), []string{"Origin", "https://evil.example"}, "came from another website"},
		{"cross-site fetch metadata", creds(tok), []string{"Sec-Fetch-Site", "cross-site"}, "came from another website"},
		{"same-site but not same-origin", creds(tok), []string{"Sec-Fetch-Site", "same-site"}, "came from another website"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := b.post("/login", c.v, c.hdr...)
			if p.status != http.StatusForbidden || !strings.Contains(p.body, c.want) {
				t.Fatalf("status %d, want 403 with %q:\n%s", p.status, c.want, p.body)
			}
			if b.cookie(SessionCookie) != nil {
				t.Fatal("logged in despite a refused CSRF check")
			}
		})
	}
	// The genuine token works, with and without same-origin headers.
	if p := b.post("/login", creds(tok)); !strings.HasSuffix(p.url, "/account") {
		t.Fatalf("genuine token refused: %d at %s", p.status, p.url)
	}
	// Logged in, forms are bound to the session: the pre-session token no
	// longer changes anything on the account.
	p := b.post("/account/profile", url.Values{"csrf": {otherTok}, "first_name": {"X"}, "last_name": {"Y"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("profile change with a foreign token: %d", p.status)
	}
	// POST /logout without a token does not log out.
	if p := b.post("/logout", url.Values{}); p.status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", p.status)
	}
	if _, _, ok := currentOf(e, b); !ok {
		t.Fatal("logged out by a POST without token")
	}
}

func html_csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in\n%s", body)
	}
	return m[1]
}

// Mounted handlers: Handle refuses cross-site POSTs, HandleCrossSite lets the
// SAML bindings through.
func TestMountedHandlers(t *testing.T) {
	e := newEnv(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("mounted")) })
	e.web.Handle("POST /oidc/consent", ok)
	e.web.HandleCrossSite("POST /saml/sso", ok)
	b := e.browser()
	if p := b.post("/oidc/consent", url.Values{}, "Sec-Fetch-Site", "cross-site"); p.status != 403 {
		t.Errorf("Handle: cross-site POST got %d", p.status)
	}
	if p := b.post("/saml/sso", url.Values{}, "Sec-Fetch-Site", "cross-site", "Origin", "https://sp.example"); p.status != 200 || p.body != "mounted" {
		t.Errorf("HandleCrossSite: cross-site POST got %d %q", p.status, p.body)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, base := range []string{"http://id.example.test", "https://id.example.test"} {
		t.Run(base, func(t *testing.T) {
			e := newEnv(t)
			e.createUser("carol", "carol@example.org", "carols secret", false)
			w, err := New(Options{Accounts: e.acc, Store: e.st, BaseURL: base, Keys: [][]byte{testKey}})
			if err != nil {
				t.Fatal(err)
			}
			h := w.Handler()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", base+"/login", nil))
			anon := findCookie(rec.Result().Cookies(), CSRFCookie)
			if anon == nil {
				t.Fatal("no idbridge_csrf cookie on the login page")
			}
			tok := html_csrf(t, rec.Body.String())

			form := url.Values{"login": {"carol"}, "password": {"carols secret"}, "csrf": {tok}, "continue": {"/"}}
			req := httptest.NewRequest("POST", base+"/login", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: CSRFCookie, Value: anon.Value})
			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("login: %d\n%s", rec.Code, rec.Body)
			}
			sess := findCookie(rec.Result().Cookies(), SessionCookie)
			if sess == nil {
				t.Fatal("no session cookie")
			}
			wantSecure := strings.HasPrefix(base, "https")
			for _, c := range []*http.Cookie{anon, sess} {
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != wantSecure {
					t.Errorf("cookie %s: HttpOnly=%v SameSite=%v Path=%q Secure=%v (want Secure=%v)",
						c.Name, c.HttpOnly, c.SameSite, c.Path, c.Secure, wantSecure)
				}
			}
			if len(sess.Value) < 40 {
				t.Errorf("session cookie value %q looks too short", sess.Value)
			}
		})
	}
}

func findCookie(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLocalPath(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"/account", true},
		{"/", true},
		{"/saml/continue?id=abc&x=1", true},
		{"/a/b#frag", true},
		{"/%2e%2e/x", true},
		{"", false},
		{"account", false},
		{"//evil.example", false},
		{"//evil.example/path", false},
		{"/\\evil.example", false},
		{"/\\/evil.example", false},
		{"/a\\b", false},
		{"https://evil.example", false},
		{"http:/evil.example", false},
		{"javascript:alert(1)", false},
		{"/\t/evil.example", false},
		{"/a\nb", false},
		{"/a\rb", false},
		{"/\x00", false},
		{"/%2f/evil.example", false},
		{"/%5cevil.example", false},
		{"\\\\evil.example", false},
		{" /account", false},
		{"/" + strings.Repeat("a", maxContinueLen), false},
	}
	for _, c := range cases {
		if got := localPath(c.in); got != c.want {
			t.Errorf("localPath(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The login page sends the member to continue only when it is local.
func TestLoginContinue(t *testing.T) {
	e := newEnv(t)
	e.createUser("dave", "dave@example.org", "daves secret", false)
	for _, c := range []struct{ cont, want string }{
		{"/admin/audit?x=1", "/admin/audit?x=1"},
		{"//evil.example/", "/account"},
		{"https://evil.example/", "/account"},
		{"/\\evil.example", "/account"},
		{"", "/account"},
	} {
		b := e.browser()
		b.follow = false
		p := b.submit(e.web.LoginURL(c.cont, false), "/login",
			url.Values{"login": {"dave"}, "password": {"daves secret"}, "continue": {c.cont}})
		if p.status != http.StatusSeeOther || p.header.Get("Location") != c.want {
			t.Errorf("continue %q: %d → %q, want %q", c.cont, p.status, p.header.Get("Location"), c.want)
		}
		// Already logged in: GET /login goes straight on, also only locally.
		q := b.get("/login?continue=" + url.QueryEscape(c.cont))
		if q.status != http.StatusSeeOther || q.header.Get("Location") != c.want {
			t.Errorf("logged-in GET continue %q: %d → %q", c.cont, q.status, q.header.Get("Location"))
		}
		// force=1 asks again.
		if q := b.get(e.web.LoginURL(c.cont, true)); q.status != 200 || !strings.Contains(q.body, "enter your password again") {
			t.Errorf("force=1 did not ask for the password: %d", q.status)
		}
	}
	if got := e.web.LoginURL("//evil", true); got != "/login?force=1" {
		t.Errorf("LoginURL kept a foreign continue: %q", got)
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "203.0.113.7:4000", nil, "203.0.113.7"},
		{"untrusted peer's XFF ignored", "203.0.113.7:4000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer, one hop", "10.0.0.1:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted wins", "10.0.0.1:4000", []string{"1.1.1.1, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"spoofed left part ignored", "10.0.0.1:4000", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"all trusted: leftmost", "10.0.0.1:4000", []string{"10.1.1.1, 10.0.0.2"}, "10.1.1.1"},
		{"garbage stops the walk", "10.0.0.1:4000", []string{"1.2.3.4, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"garbage right at the proxy", "10.0.0.1:4000", []string{"1.2.3.4, nonsense"}, "10.0.0.1"},
		{"trusted peer without XFF", "10.0.0.1:4000", nil, "10.0.0.1"},
		{"ipv6 peer", "[2001:db8::1]:443", []string{"1.2.3.4"}, "2001:db8::1"},
		{"ipv6 trusted proxy", "[fd00::1]:443", []string{"2001:db8::7"}, "2001:db8::7"},
		{"v4-mapped peer", "[::ffff:10.0.0.1]:443", []string{"198.51.100.9"}, "198.51.100.9"},
		{"hop with port", "10.0.0.1:1", []string{"198.51.100.1:5555"}, "198.51.100.1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientIP(r, trusted).String(); got != c.want {
			t.Errorf("%s: clientIP = %s, want %s", c.name, got, c.want)
		}
	}
}

func TestRegistrationSpamDefences(t *testing.T) {
	e := newEnv(t)
	valid := func(user string) url.Values {
		return url.Values{
			"username": {user}, "first_name": {"Eve"}, "last_name": {"Spam"},
			"email": {user + "@example.org"}, "password": {"long enough pw"}, "password_confirm": {"long enough pw"},
		}
	}
	noAccount := func(user string) {
		t.Helper()
		if _, _, err := e.acc.Get(context.Background(), user); err == nil {
			t.Errorf("account %s was created", user)
		}
	}
	b := e.browser()

	// Honeypot: looks like success, creates nothing, sends nothing.
	v := valid("honey")
	v.Set(honeypotField, "http://spam.example")
	p := b.register(v, 10*time.Second)
	if !strings.HasSuffix(p.url, "/register/done") {
		t.Errorf("honeypot: %d at %s", p.status, p.url)
	}
	noAccount("honey")

	// Too fast.
	p = b.register(valid("fast"), time.Second)
	if p.status != 422 || !strings.Contains(p.body, "faster than a person") {
		t.Errorf("too fast: %d\n%s", p.status, p.body)
	}
	noAccount("fast")
	// The form comes back filled in, with a fresh timestamp.
	if !strings.Contains(p.body, `value="fast"`) || !tsRe.MatchString(p.body) {
		t.Error("refused form not refilled")
	}

	// Too old.
	p = b.register(valid("old"), 3*time.Hour)
	if p.status != 422 || !strings.Contains(p.body, "open for too long") {
		t.Errorf("too old: %d\n%s", p.status, p.body)
	}
	noAccount("old")

	// Forged or missing timestamp.
	for _, ts := range []string{"1", "9999999999.AAAA", "x"} {
		v := valid("forged")
		v.Set("ts", ts)
		p = b.register(v, 10*time.Second)
		if p.status != 422 || !strings.Contains(p.body, "could not be checked") {
			t.Errorf("ts %q: %d", ts, p.status)
		}
	}
	noAccount("forged")
	if n := e.mailCount(); n != 0 {
		t.Errorf("%d mails sent for refused registrations", n)
	}
	if got := counterValue(t, e, "idbridge_registrations_total", "result", "spam"); got != 6 {
		t.Errorf("spam registrations counted %v, want 6", got)
	}

	// The honeypot is labelled and hidden from sight and keyboard.
	p = b.get("/register")
	if !regexp.MustCompile(`<div class="hp">\s*<label for="homepage">Leave this field empty</label>\s*<input id="homepage" name="homepage" type="text" tabindex="-1" autocomplete="off">`).MatchString(p.body) {
		t.Errorf("honeypot markup:\n%s", p.body)
	}
}

// Captcha hook: a refusing captcha stops the registration.
type fakeCaptcha struct{ ok bool }

func (f fakeCaptcha) Widget(*http.Request) template.HTML { return "<p>captcha here</p>" }
func (f fakeCaptcha) Verify(context.Context, *http.Request, string) (bool, error) {
	return f.ok, nil
}

func TestCaptchaHook(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Captcha = fakeCaptcha{ok: false} })
	b := e.browser()
	if p := b.get("/register"); !strings.Contains(p.body, "<p>captcha here</p>") {
		t.Fatal("captcha widget missing")
	}
	p := b.register(url.Values{"username": {"cap"}, "first_name": {"C"}, "last_name": {"P"},
		"email": {"cap@example.org"}, "password": {"long enough pw"}, "password_confirm": {"long enough pw"}}, 10*time.Second)
	if p.status != 422 || !strings.Contains(p.body, "captcha was not solved") {
		t.Fatalf("captcha refusal: %d", p.status)
	}
}

func TestRegisterFieldErrors(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	p := b.register(url.Values{"username": {"postmaster"}, "first_name": {"P"}, "last_name": {"M"},
		"email": {"pm@" + testDomain}, "password": {"short"}, "password_confirm": {"short"}}, 10*time.Second)
	if p.status != 422 {
		t.Fatalf("status %d", p.status)
	}
	for _, want := range []string{
		`<p class="error" id="username-error"><span class="visually-hidden">Error: </span>This username is reserved.`,
		`id="username" name="username" type="text" value="postmaster" autocomplete="username" required autofocus aria-describedby="username-hint username-error" aria-invalid="true"`,
		`id="email-error"`, `Use your own email address`,
		`id="password-error"`, `Use at least 8 characters.`,
		`<a href="#username">`,
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("missing %q in\n%s", want, p.body)
		}
	}
	if strings.Contains(p.body, `value="short"`) {
		t.Error("password sent back to the browser")
	}
	// Mismatched confirmation.
	p = b.register(url.Values{"username": {"frank"}, "first_name": {"F"}, "last_name": {"M"},
		"email": {"frank@example.org"}, "password": {"long enough pw"}, "password_confirm": {"other pw 123"}}, 10*time.Second)
	if p.status != 422 || !strings.Contains(p.body, "The two passwords are not the same.") {
		t.Fatalf("mismatch: %d", p.status)
	}
	if _, _, err := e.acc.Get(context.Background(), "frank"); err == nil {
		t.Error("account created although the confirmation differed")
	}
}

// The login form answers alike for an unknown user, a wrong password, a
// locked account and a throttled one.
func TestLoginErrorsIdentical(t *testing.T) {
	e := newEnv(t)
	e.createUser("gina", "gina@example.org", "ginas secret", false)
	e.createUser("hank", "hank@example.org", "hanks secret", false)
	if err := e.acc.Lock(context.Background(), "hank", "cli"); err != nil {
		t.Fatal(err)
	}
	e.createUser("ivan", "ivan@example.org", "ivans secret", false)

	attempt := func(login, pw string) page {
		b := e.browser()
		p := b.submit("/login", "/login", url.Values{"login": {login}, "password": {pw}})
		p.body = strings.ReplaceAll(p.body, `value="`+login+`"`, `value="LOGIN"`)
		p.body = csrfRe.ReplaceAllString(p.body, "CSRF")
		return p
	}
	ref := attempt("nobody", "whatever pw")
	if ref.status != 422 || !strings.Contains(ref.body, "Invalid username or password.") {
		t.Fatalf("unknown user: %d\n%s", ref.status, ref.body)
	}
	// Throttle ivan: three failures, then even the right password fails.
	for range 3 {
		attempt("ivan", "wrong")
	}
	for name, p := range map[string]page{
		"wrong password": attempt("gina", "wrong password"),
		"locked":         attempt("hank", "hanks secret"),
		"throttled":      attempt("ivan", "ivans secret"),
	} {
		if p.status != ref.status || p.body != ref.body {
			t.Errorf("%s: status %d and body differ from the unknown-user answer:\n%s", name, p.status, p.body)
		}
	}
}

func TestForgotPasswordSameAnswer(t *testing.T) {
	e := newEnv(t)
	e.createUser("judy", "judy@example.org", "judys secret", false)
	b := e.browser()
	other := e.browser()
	other.login("judy", "judys secret")

	known := b.submit("/password/forgot", "/password/forgot", url.Values{"login": {"judy"}})
	unknown := b.submit("/password/forgot", "/password/forgot", url.Values{"login": {"nobody"}})
	if known.status != 200 || known.status != unknown.status || known.body != unknown.body {
		t.Fatalf("forgot answers differ:\n%d %s\n---\n%d %s", known.status, known.body, unknown.status, unknown.body)
	}

	// The reset link: GET shows a form, POST sets the password and ends
	// every session; the link works once.
	link := e.mailLink("judy@example.org", "/password/reset?token=")
	tok := mustQuery(t, link, "token")
	p := b.get(link)
	if p.status != 200 || !strings.Contains(p.body, `action="/password/reset"`) {
		t.Fatalf("reset page: %d", p.status)
	}
	p = b.submit(link, "/password/reset", url.Values{"token": {tok}, "password": {"short"}, "password_confirm": {"short"}})
	if p.status != 422 || !strings.Contains(p.body, "at least 8") {
		t.Fatalf("short reset password: %d", p.status)
	}
	p = b.submit(link, "/password/reset", url.Values{"token": {tok}, "password": {"judys new secret"}, "password_confirm": {"judys new secret"}})
	if !strings.Contains(p.url, "/login?done=reset") {
		t.Fatalf("reset: %d at %s\n%s", p.status, p.url, p.body)
	}
	if p := other.get("/account"); !strings.Contains(p.url, "/login") {
		t.Error("session survived a password reset")
	}
	p = b.submit(link, "/password/reset", url.Values{"token": {tok}, "password": {"another secret"}, "password_confirm": {"another secret"}})
	if p.status != 422 || !strings.Contains(p.body, "invalid or has expired") {
		t.Fatalf("reset link reused: %d", p.status)
	}
	b.login("judy", "judys new secret")
}

func TestAdminPages(t *testing.T) {
	e := newEnv(t)
	e.createUser("root1", "root1@example.org", "admin secret pw", true)
	e.createUser("kim", "kim@example.org", "kims secret", false)
	member := e.browser()
	member.login("kim", "kims secret")
	anon := e.browser()
	anon.follow = false
	for _, path := range []string{"/admin/", "/admin/accounts", "/admin/accounts/kim", "/admin/audit"} {
		if p := member.get(path); p.status != http.StatusForbidden || !strings.Contains(p.body, "not allowed") {
			t.Errorf("member GET %s: %d", path, p.status)
		}
		if p := anon.get(path); p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), "/login?continue=") {
			t.Errorf("anonymous GET %s: %d %s", path, p.status, p.header.Get("Location"))
		}
	}
	if p := member.submit("/account", "/admin/accounts/kim/lock", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("member lock: %d", p.status)
	}

	admin := e.browser()
	admin.login("root1", "admin secret pw")
	p := admin.get("/admin/accounts?q=kim")
	if p.status != 200 || !strings.Contains(p.body, `href="/admin/accounts/kim"`) {
		t.Fatalf("search: %d\n%s", p.status, p.body)
	}
	p = admin.submit("/admin/accounts/kim", "/admin/accounts/kim/lock", url.Values{})
	if !strings.Contains(p.body, "The account is locked.") {
		t.Fatalf("lock: %d at %s", p.status, p.url)
	}
	if p := member.get("/account"); !strings.Contains(p.url, "/login") {
		t.Error("locked member still logged in")
	}
	p = admin.submit("/admin/accounts/kim", "/admin/accounts/kim/groups", url.Values{"group": {"jira-users"}, "action": {"add"}})
	if !strings.Contains(p.body, "jira-users") {
		t.Fatalf("group add: %d", p.status)
	}
	p = admin.submit("/admin/accounts/kim", "/admin/accounts/kim/groups", url.Values{"group": {"Bad Group!"}, "action": {"add"}})
	if p.status != 422 || !strings.Contains(p.body, `id="group-group-error"`) {
		t.Fatalf("bad group: %d\n%s", p.status, p.body)
	}
	admin.submit("/admin/accounts/kim", "/admin/accounts/kim/unlock", url.Values{})
	p = admin.get("/admin/audit?user=kim")
	if !strings.Contains(p.body, "admin.lock") || !strings.Contains(p.body, "admin:root1") {
		t.Fatalf("audit page lacks the lock:\n%s", p.body)
	}
	if p := admin.get("/admin/accounts/nobody"); p.status != 404 {
		t.Errorf("unknown account: %d", p.status)
	}
	member.login("kim", "kims secret")
}

func TestAccountForms(t *testing.T) {
	e := newEnv(t)
	e.createUser("lena", "lena@example.org", "lenas secret", false)
	b := e.browser()
	b.login("lena", "lenas secret")

	p := b.submit("/account", "/account/profile", url.Values{"first_name": {"Helena"}, "last_name": {"Berg"}})
	if !strings.Contains(p.body, "Your name has been saved.") || !strings.Contains(p.body, "Helena Berg") {
		t.Fatalf("profile: %d at %s", p.status, p.url)
	}
	// Change email: wrong password, then right; pending until verified.
	p = b.submit("/account", "/account/email", url.Values{"new_email": {"lena@new.example"}, "current_password": {"nope"}})
	if p.status != 422 || !strings.Contains(p.body, `id="email-current_password-error"`) {
		t.Fatalf("email, wrong password: %d\n%s", p.status, p.body)
	}
	p = b.submit("/account", "/account/email", url.Values{"new_email": {"lena@new.example"}, "current_password": {"lenas secret"}})
	if !strings.Contains(p.body, `id="pending-email">lena@new.example`) {
		t.Fatalf("pending email not shown: %d\n%s", p.status, p.body)
	}
	link := e.mailLink("lena@new.example", "/verify?token=")
	p = b.submit(link, "/verify", url.Values{"token": {mustQuery(t, link, "token")}})
	if !strings.Contains(p.url, "/account?done=verified") || !strings.Contains(p.body, `id="email">lena@new.example<`) {
		t.Fatalf("email change verify: %s\n%s", p.url, p.body)
	}
	// Password change with a wrong confirmation and a wrong current password.
	p = b.submit("/account", "/account/password", url.Values{"current_password": {"lenas secret"},
		"new_password": {"abcdefghij1"}, "new_password_confirm": {"abcdefghij2"}})
	if p.status != 422 || !strings.Contains(p.body, `id="password-new_password_confirm-error"`) {
		t.Fatalf("password mismatch: %d", p.status)
	}
	p = b.submit("/account", "/account/password", url.Values{"current_password": {"bad"},
		"new_password": {"abcdefghij1"}, "new_password_confirm": {"abcdefghij1"}})
	if p.status != 422 || !strings.Contains(p.body, "Your current password is not right.") {
		t.Fatalf("password wrong current: %d", p.status)
	}
	// End another session.
	b2 := e.browser()
	b2.login("lena@new.example", "lenas secret")
	id, _, _ := currentOf(e, b2)
	p = b.submit("/account", "/account/sessions/end", url.Values{"session": {id}})
	if !strings.Contains(p.body, "The session has ended.") {
		t.Fatalf("end session: %s", p.url)
	}
	if _, _, ok := currentOf(e, b2); ok {
		t.Error("ended session still alive")
	}
	// Delete: needs the box ticked and the password.
	p = b.submit("/account", "/account/delete", url.Values{"current_password": {"lenas secret"}})
	if p.status != 422 || !strings.Contains(p.body, "Tick the box") {
		t.Fatalf("delete without confirm: %d", p.status)
	}
	p = b.submit("/account", "/account/delete", url.Values{"current_password": {"lenas secret"}, "confirm": {"yes"}})
	if !strings.Contains(p.body, "Your account has been deleted.") {
		t.Fatalf("delete: %d at %s", p.status, p.url)
	}
	if b.cookie(SessionCookie) != nil {
		t.Error("session cookie kept after deletion")
	}
	p = b.submit("/login", "/login", url.Values{"login": {"lena"}, "password": {"lenas secret"}})
	if !strings.Contains(p.body, "Invalid username or password.") {
		t.Error("deleted account can log in")
	}
}

func TestHeadersLogsAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, func(o *Options) { o.Log = slog.New(slog.NewJSONHandler(&logs, nil)) })
	b := e.browser()
	p := b.get("/verify?token=SECRET-TOKEN-VALUE")
	h := p.header
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if !strings.HasPrefix(h.Get(k), want) {
			t.Errorf("%s = %q, want %q…", k, h.Get(k), want)
		}
	}
	id := h.Get("X-Request-Id")
	if len(id) < 16 {
		t.Errorf("X-Request-Id %q", id)
	}
	if strings.Contains(logs.String(), "SECRET-TOKEN-VALUE") {
		t.Errorf("the query string reached the log:\n%s", logs.String())
	}
	if !regexp.MustCompile(`"request_id":"` + id + `".*"method":"GET","path":"/verify","route":"GET /verify","status":200`).MatchString(logs.String()) {
		t.Errorf("no access-log line for the request:\n%s", logs.String())
	}
	if !strings.Contains(p.body, `<html lang="en">`) {
		t.Error("no lang attribute")
	}
	if strings.Contains(strings.ToLower(p.body), "<script") {
		t.Error("a page holds a script")
	}
	if got := histogramCount(t, e, "GET /verify", "200"); got != 1 {
		t.Errorf("HTTPDuration count for GET /verify = %d", got)
	}

	css := b.get("/static/style.css")
	if css.status != 200 || !strings.Contains(css.body, "--accent: "+defaultColor) || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css: %d %q", css.status, css.header.Get("Content-Type"))
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if p := b.get("/healthz"); p.status != 200 || p.body != "ok\n" {
		t.Errorf("healthz: %d %q", p.status, p.body)
	}
	if p := b.get("/readyz"); p.status != 200 {
		t.Errorf("readyz: %d", p.status)
	}
	e.st.Close()
	if p := b.get("/readyz"); p.status != 503 {
		t.Errorf("readyz with a closed store: %d", p.status)
	}
	if p := b.get("/healthz"); p.status != 200 {
		t.Errorf("healthz with a closed store: %d", p.status)
	}
}

func TestDevMailOnlyInDev(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Dev = false })
	if p := e.browser().get("/dev/mail"); p.status != 404 {
		t.Fatalf("/dev/mail without Dev: %d", p.status)
	}
}

func TestPortal(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Portal = func(r *http.Request, a store.Account) []PortalLink {
			return []PortalLink{
				{Name: "Jira", URL: "/saml/launch/atlassian", Description: "Issues"},
				{Name: "Bad", URL: "javascript:alert(1)"},
			}
		}
	})
	e.createUser("mia", "mia@example.org", "mias secret", false)
	b := e.browser()
	if p := b.get("/"); !strings.Contains(p.body, `href="/login"`) || !strings.Contains(p.body, `href="/register"`) {
		t.Fatalf("logged-out portal:\n%s", p.body)
	}
	b.login("mia", "mias secret")
	p := b.get("/")
	if !strings.Contains(p.body, `<a href="/saml/launch/atlassian">Jira</a>`) || strings.Contains(p.body, "javascript:") {
		t.Fatalf("portal:\n%s", p.body)
	}
}
