package e2e

import (
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMultiNode starts two `serve --dev` nodes on one fresh PostgreSQL
// database (different --data-dir and ports) and checks what PRODUCT.md ("How
// it grows past one machine") promises they agree on: accounts, sessions, the
// HMAC key of the CSRF tokens, and the SAML signing key.
//
// Every client below has its own cookie jar, and a cookie is carried from one
// node to the other only explicitly: Go's cookie jar, like a browser, does not
// tell ports apart, so one jar for both nodes would share cookies silently.
func TestMultiNode(t *testing.T) {
	t.Parallel()
	env := postgresEnv(t) // registered first: the database is dropped after both nodes stop
	tmp := t.TempDir()
	a := startDev(t, devOptions{DataDir: filepath.Join(tmp, "node-a"), Env: env})
	b := startDev(t, devOptions{DataDir: filepath.Join(tmp, "node-b"), Env: env})
	if a.URL == b.URL {
		t.Fatalf("both nodes listen on %s", a.URL)
	}

	// 1. An account created through node A logs in on node B.
	const pw = "two nodes one database"
	a.cli(t, pw+"\n", "user", "add", "carla", "--email", "carla@example.org",
		"--first-name", "Carla", "--last-name", "Node", "--password-stdin")
	onB := newClient(t, b.URL, "e2e-multi-b")
	if !onB.login("carla", pw) {
		t.Fatalf("carla (created through node A) cannot log in on node B")
	}
	if got := onB.get("/account").textOf("virtual-address"); got != "carla@id.localhost" {
		t.Errorf("node B /account after login on B: virtual address %q, want carla@id.localhost", got)
	}

	// 2. A session cookie from node A is accepted by node B.
	onA := newClient(t, a.URL, "e2e-multi-a")
	p := onA.submit("/login", "/login", url.Values{"login": {"carla"}, "password": {pw}})
	if p.Status != http.StatusSeeOther || strings.HasPrefix(p.Location, "/login") {
		t.Fatalf("login on node A: status %d, Location %q, want a 303 away from /login\n%s", p.Status, p.Location, tail(p.Body, 2000))
	}
	session := cookieNamed(p.Cookies, "idbridge_session")
	if session == "" {
		t.Fatalf("login on node A set no idbridge_session cookie: %v", p.Cookies)
	}
	carried := newClient(t, b.URL, "e2e-multi-carried")
	setCookie(t, carried, "idbridge_session", session)
	acct := carried.get("/account")
	if acct.Status != http.StatusOK || acct.textOf("virtual-address") != "carla@id.localhost" {
		t.Errorf("node B /account with node A's session cookie: status %d, Location %q, virtual address %q; want 200 and carla@id.localhost",
			acct.Status, acct.Location, acct.textOf("virtual-address"))
	}

	// 3. A login form (token and idbridge_csrf cookie) from node A is
	// accepted when posted to node B.
	formA := newClient(t, a.URL, "e2e-multi-form")
	lp := formA.get("/login")
	if lp.Status != http.StatusOK {
		t.Fatalf("GET /login on node A: status %d", lp.Status)
	}
	fields := lp.hiddenFields("/login")
	if fields == nil || fields.Get("csrf") == "" {
		t.Fatalf("GET /login on node A: no login form with a csrf field")
	}
	csrf := cookieNamed(lp.Cookies, "idbridge_csrf")
	if csrf == "" {
		t.Fatalf("GET /login on node A set no idbridge_csrf cookie: %v", lp.Cookies)
	}
	formB := newClient(t, b.URL, "e2e-multi-form")
	setCookie(t, formB, "idbridge_csrf", csrf)
	fields.Set("login", "carla")
	fields.Set("password", pw)
	if p := formB.post("/login", fields); p.Status != http.StatusSeeOther || strings.HasPrefix(p.Location, "/login") {
		t.Errorf("node A's login form posted to node B: status %d, Location %q; want a 303 away from /login (403 means the CSRF key differs)\n%s",
			p.Status, p.Location, tail(p.Body, 2000))
	} else if !formB.loggedIn() {
		t.Errorf("node A's login form posted to node B logged in, but /account on B does not see the session")
	}

	// 4. Logging out on node B ends the session on node A.
	if !onA.loggedIn() {
		t.Fatalf("carla's node A session is not alive before the logout on node B")
	}
	if p := carried.submit("/logout", "/logout", nil); p.Status != http.StatusSeeOther {
		t.Errorf("POST /logout on node B with node A's session: status %d, want 303\n%s", p.Status, tail(p.Body, 2000))
	}
	if onA.loggedIn() {
		t.Errorf("node A still accepts the session logged out on node B")
	}
	if carried.loggedIn() {
		t.Errorf("node B still accepts the session it logged out")
	}

	// 5. Both nodes publish the same SAML signing certificate(s).
	certA, certB := metadataCerts(t, a.URL), metadataCerts(t, b.URL)
	if len(certA) == 0 {
		t.Errorf("node A /saml/metadata has no <ds:X509Certificate>")
	}
	if strings.Join(certA, "\n") != strings.Join(certB, "\n") {
		t.Errorf("the nodes publish different SAML certificates:\nnode A: %q\nnode B: %q", certA, certB)
	}
}

// cookieNamed returns the value of the first cookie named name, "" when none.
func cookieNamed(cookies []*http.Cookie, name string) string {
	for _, c := range cookies {
		if c.Name == name && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// setCookie puts a cookie in c's jar for c's node, as a browser that was
// sent to this node by a load balancer would carry it.
func setCookie(t *testing.T, c *client, name, value string) {
	t.Helper()
	u, err := url.Parse(c.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

var x509Cert = regexp.MustCompile(`(?s)<ds:X509Certificate>(.*?)</ds:X509Certificate>`)

// metadataCerts returns the text of every <ds:X509Certificate> of the node's
// /saml/metadata, white space removed.
func metadataCerts(t *testing.T, base string) []string {
	t.Helper()
	p := newClient(t, base, "e2e-multi-metadata").get("/saml/metadata")
	if p.Status != http.StatusOK {
		t.Fatalf("GET %s/saml/metadata: status %d", base, p.Status)
	}
	var out []string
	for _, m := range x509Cert.FindAllStringSubmatch(p.Body, -1) {
		out = append(out, strings.Join(strings.Fields(m[1]), ""))
	}
	return out
}
