package saml

import (
	"encoding/base64"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSameSitePost: the session cookie is SameSite=Lax, so an HTTP-POST
// AuthnRequest from the SP's site arrives without it. On 127.0.0.1 every
// port is the same site and a browser would send the cookie, so the
// cross-site POST is made explicitly: no cookie, and the headers a browser
// sends cross-site. idbridge keeps the request and answers 303 to a GET on
// its own origin; that GET, with the cookie, yields the assertion.
func TestSameSitePost(t *testing.T) {
	t.Parallel()
	atl := atlassianSPs[0]
	in := startIDB(t, atl)
	u := in.addUser(t, "samesite", false)
	sso := in.URL + "/saml/sso"

	// Log in by hand to see the session cookie's attributes.
	browser := newClient()
	resp, body := get(t, browser, in.URL+"/login")
	csrf, cont := csrfRE.FindStringSubmatch(body), continueRE.FindStringSubmatch(body)
	if csrf == nil || cont == nil {
		t.Fatalf("login form:\n%s", truncate(body, 1500))
	}
	resp, _ = postForm(t, noFollow(browser), in.URL+"/login", url.Values{"csrf": {html.UnescapeString(csrf[1])}, "continue": {html.UnescapeString(cont[1])},
		"login": {u.Name}, "password": {password}})
	var session string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "idbridge_session=") {
			session = c
		}
	}
	if !strings.Contains(session, "SameSite=Lax") || !strings.Contains(session, "HttpOnly") {
		t.Errorf("session cookie %q, want HttpOnly and SameSite=Lax", session)
	}

	// crossSitePost sends the AuthnRequest as a browser does from another
	// site: no cookie (SameSite=Lax), Origin and Sec-Fetch-Site cross-site.
	crossSitePost := func(t *testing.T, r *authnReq, relay string) string {
		t.Helper()
		form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(r.xml()))}, "RelayState": {relay}}
		req, _ := http.NewRequest("POST", sso, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://auth.atlassian.com")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		c := noFollow(&http.Client{Timeout: 30 * time.Second})
		resp, err := c.Do(req)
		resp, body := readBody(t, resp, err)
		noAssertion(t, "cross-site POST", resp, body)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("cross-site POST: %d, want 303:\n%s", resp.StatusCode, truncate(body, 800))
		}
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Scheme+"://"+loc.Host != in.URL || loc.Path != "/saml/sso" {
			t.Fatalf("303 to %q, want a GET of /saml/sso on idbridge's origin %s", resp.Header.Get("Location"), in.URL)
		}
		if strings.Contains(loc.RawQuery, "SAMLRequest") {
			t.Errorf("the continuation %s carries the request in the URL instead of keeping it server-side", loc)
		}
		return loc.String()
	}

	t.Run("logged in", func(t *testing.T) {
		r := &authnReq{Issuer: atl.EntityID, Destination: sso, ACSURL: atl.ACSURL}
		next := crossSitePost(t, r, "relay-1")
		resp, body := get(t, browser, next)
		p := mustPostPage(t, resp, body)
		if p.Action != atl.ACSURL || p.Fields.Get("RelayState") != "relay-1" {
			t.Errorf("posts to %q with RelayState %q", p.Action, p.Fields.Get("RelayState"))
		}
		root := parseXML(t, p.responseXML(t))
		if got := root.SelectAttrValue("InResponseTo", ""); got != r.ID {
			t.Errorf("InResponseTo %q, want %q", got, r.ID)
		}
		if nid := root.FindElement("./Assertion/Subject/NameID"); nid == nil || nid.Text() != u.virtual() {
			t.Errorf("NameID is not %s", u.virtual())
		}
		// The continuation is single-use.
		resp, body = get(t, browser, next)
		noAssertion(t, "continuation used twice", resp, body)
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("continuation used twice: %d, want a 4xx", resp.StatusCode)
		}
	})

	t.Run("not logged in", func(t *testing.T) {
		r := &authnReq{Issuer: atl.EntityID, Destination: sso, ACSURL: atl.ACSURL}
		next := crossSitePost(t, r, "relay-2")
		c := newClient()
		resp, body := get(t, c, next)
		resp, body = submitLogin(t, in, c, resp, body, u.Name, password)
		p := mustPostPage(t, resp, body)
		if got := parseXML(t, p.responseXML(t)).SelectAttrValue("InResponseTo", ""); got != r.ID || p.Fields.Get("RelayState") != "relay-2" {
			t.Errorf("InResponseTo %q (want %q), RelayState %q", got, r.ID, p.Fields.Get("RelayState"))
		}
	})
}
