package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// TestHTTP checks the running binary at the HTTP level: health, readiness
// and metrics endpoints, cookie attributes, CSRF refusal, the one answer for
// every failed login, and that the login form never redirects off site.
func TestHTTP(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			testHTTP(t, startDev(t, devOptions{Env: b.env(t)}))
		})
	}
}

func testHTTP(t *testing.T, in *instance) {
	c := newClient(t, in.URL, "e2e-http")
	for _, path := range []string{"/healthz", "/readyz"} {
		if p := c.get(path); p.Status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200\n%s", path, p.Status, p.Body)
		}
	}
	if p := c.get("/no/such/page"); p.Status != http.StatusNotFound {
		t.Errorf("GET /no/such/page: %d, want 404", p.Status)
	}
	for _, path := range []string{"/", "/login", "/register", "/password/forgot"} {
		if p := c.get(path); p.Status != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, p.Status)
		}
	}

	// The logged-out CSRF cookie: HttpOnly, SameSite=Lax, not Secure on http.
	fresh := newClient(t, in.URL, "e2e-cookies")
	p := fresh.get("/login")
	checkCookies(t, "GET /login", p.Cookies)

	// CSRF: no token, and a token of another browser, are refused.
	if p := fresh.post("/login", url.Values{"login": {in.AdminUser}, "password": {in.AdminPass}}); p.Status != http.StatusForbidden {
		t.Errorf("POST /login without a CSRF token: %d, want 403", p.Status)
	}
	stolen := p.hiddenFields("/login")
	other := newClient(t, in.URL, "e2e-other")
	stolen.Set("login", in.AdminUser)
	stolen.Set("password", in.AdminPass)
	if p := other.post("/login", stolen); p.Status != http.StatusForbidden {
		t.Errorf("POST /login with another browser's CSRF token: %d, want 403", p.Status)
	}
	// A cross-site form post is refused even with a valid token.
	form := fresh.get("/login").hiddenFields("/login")
	form.Set("login", in.AdminUser)
	form.Set("password", in.AdminPass)
	req, _ := http.NewRequest(http.MethodPost, in.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := fresh.do(req); p.Status != http.StatusForbidden {
		t.Errorf("cross-site POST /login: %d, want 403", p.Status)
	}

	// One answer for an unknown user and a wrong password.
	unknown := c.submit("/login", "/login", url.Values{"login": {"nobody-here"}, "password": {"whatever password"}})
	wrong := c.submit("/login", "/login", url.Values{"login": {in.AdminUser}, "password": {"whatever password"}})
	if unknown.Status != wrong.Status || unknown.Status < 400 {
		t.Errorf("failed logins: status %d (unknown user) and %d (wrong password), want one 4xx", unknown.Status, wrong.Status)
	}
	if a, b := errorText(unknown), errorText(wrong); a != b || a == "" {
		t.Errorf("failed logins say different things: unknown user %q, wrong password %q", a, b)
	}

	// A successful login: session cookie attributes, no open redirect.
	p = c.submit("/login?continue=//evil.example/x", "/login", url.Values{
		"login": {in.AdminUser}, "password": {in.AdminPass}, "continue": {"//evil.example/x"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("demo admin login: %d, want 303\n%s", p.Status, tail(p.Body, 2000))
	}
	if !strings.HasPrefix(p.Location, "/") || strings.HasPrefix(p.Location, "//") || strings.HasPrefix(p.Location, "/\\") {
		t.Errorf("login with continue=//evil.example/x redirects to %q, want a local path", p.Location)
	}
	checkCookies(t, "POST /login", p.Cookies)
	var session bool
	for _, ck := range p.Cookies {
		session = session || (ck.Name == "idbridge_session" && ck.Value != "")
	}
	if !session {
		t.Errorf("a successful login set no idbridge_session cookie: %v", p.Cookies)
	}
	acct := c.get("/account")
	if acct.Status != http.StatusOK || acct.textOf("virtual-address") != in.AdminUser+"@id.localhost" {
		t.Errorf("GET /account as demo admin: %d, virtual address %q, want %s@id.localhost", acct.Status, acct.textOf("virtual-address"), in.AdminUser)
	}
	if p := c.get("/admin/accounts"); p.Status != http.StatusOK {
		t.Errorf("GET /admin/accounts as demo admin: %d, want 200", p.Status)
	}

	// /metrics has the login counter (after the logins above).
	m := c.get("/metrics")
	if m.Status != http.StatusOK || !strings.Contains(m.Body, "idbridge_logins_total") {
		t.Errorf("GET /metrics: %d, idbridge_logins_total present: %t", m.Status, strings.Contains(m.Body, "idbridge_logins_total"))
	}

	// The forwarder answers on the printed SMTP address with a 220 greeting.
	if in.SMTP != "" {
		conn, err := net.DialTimeout("tcp", in.SMTP, 5*time.Second)
		if err != nil {
			t.Errorf("smtp on %s: %v", in.SMTP, err)
		} else {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			greeting, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || !strings.HasPrefix(greeting, "220") {
				t.Errorf("smtp on %s: greeting %q, %v; want 220", in.SMTP, greeting, err)
			}
			fmt.Fprintf(conn, "QUIT\r\n")
			conn.Close()
		}
	}

	// GET /logout only asks; POST with the token logs out.
	if p := c.get("/logout"); p.Status != http.StatusOK || !c.loggedIn() {
		t.Errorf("GET /logout: %d, and must not log out", p.Status)
	}
	if p := c.submit("/logout", "/logout", nil); p.Status != http.StatusSeeOther {
		t.Errorf("POST /logout: %d, want 303", p.Status)
	}
	if c.loggedIn() {
		t.Errorf("still logged in after POST /logout")
	}
}

// checkCookies checks every idbridge cookie set: HttpOnly, SameSite=Lax,
// and not Secure (the dev base URL is http).
func checkCookies(t *testing.T, what string, cookies []*http.Cookie) {
	t.Helper()
	n := 0
	for _, ck := range cookies {
		if !strings.HasPrefix(ck.Name, "idbridge") {
			continue
		}
		n++
		if !ck.HttpOnly {
			t.Errorf("%s: cookie %s is not HttpOnly", what, ck.Name)
		}
		if ck.SameSite != http.SameSiteLaxMode {
			t.Errorf("%s: cookie %s has SameSite %v, want Lax", what, ck.Name, ck.SameSite)
		}
		if ck.Secure {
			t.Errorf("%s: cookie %s is Secure on an http base URL (the browser would drop it)", what, ck.Name)
		}
	}
	if n == 0 {
		t.Errorf("%s set no idbridge cookie", what)
	}
}

// errorText is the text of a page's error summary.
func errorText(p *page) string {
	for _, n := range find(p.doc, func(n *html.Node) bool { return hasClass(n, "error-summary") }) {
		return text(n)
	}
	return ""
}
