package saml

import (
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func wantRedirect(t *testing.T, resp *http.Response, prefix string) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, prefix) {
		t.Fatalf("got %d Location %q, want 303 to %s…", resp.StatusCode, loc, prefix)
	}
	return loc
}

// A POST to /saml/sso arrives cross-site without the SameSite=Lax cookie:
// it must never be answered with a login decision, only kept server-side
// and continued by a 303 to a GET on our own origin.
func TestPOSTContinuesOnOwnOrigin(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("one", SignResponse))
	browser := newClient(t)
	// The member is logged in; the browser has the cookie for GETs.
	get(t, browser, e.base+"/login?continue=/bye")
	x := authnRequestXML(reqOpts{Issuer: "https://one.test/sp", IssueInstant: samlTime(clock.Now()), ID: "_post1"})
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(x))}, "RelayState": {"rs-1"}}

	for _, who := range []struct {
		name string
		c    *http.Client
	}{{"without cookie", noFollow(newClient(t))}, {"with cookie", noFollow(browser)}} {
		t.Run(who.name, func(t *testing.T) {
			resp, err := who.c.PostForm(e.base+"/saml/sso", form)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc := wantRedirect(t, resp, "/saml/sso?continue=")
			if strings.Contains(string(body), "SAMLResponse") || strings.Contains(loc, "login") {
				t.Fatal("a POST was answered with a login decision")
			}
		})
	}
	// The browser follows the 303 with its cookie: now it gets the response.
	resp, err := noFollow(browser).PostForm(e.base+"/saml/sso", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := wantRedirect(t, resp, "/saml/sso?continue=")
	r2, body := get(t, browser, e.base+loc)
	if r2.StatusCode != 200 {
		t.Fatalf("continue: %d %s", r2.StatusCode, body)
	}
	action, fields := parsePostPage(t, body)
	if action != "https://one.test/acs" || fields.Get("RelayState") != "rs-1" {
		t.Errorf("action %q relay %q", action, fields.Get("RelayState"))
	}
	if got := decodeResponse(t, fields).SelectAttrValue("InResponseTo", ""); got != "_post1" {
		t.Errorf("InResponseTo %q", got)
	}
	// The continuation is single-use.
	if r3, _ := get(t, browser, e.base+loc); r3.StatusCode != http.StatusBadRequest {
		t.Errorf("second use of a continuation: %d", r3.StatusCode)
	}
	if r := r2.Header.Get("Content-Security-Policy"); !strings.Contains(r, "sha256-"+postScriptHash) {
		t.Errorf("CSP %q", r)
	}
}

// Redirect binding, not logged in: login, then the response. The page is
// HTML-escaped and works without JavaScript (a visible button).
func TestRedirectSSOWithLogin(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, atlassianSP())
	browser := newClient(t)
	x := authnRequestXML(reqOpts{Issuer: atlassianEntity, IssueInstant: samlTime(clock.Now()), ID: "_r1", ACSURL: atlassianACS})
	relay := `"><script>alert(1)</script>`
	resp, body := get(t, browser, e.base+"/saml/sso?"+redirectQuery("SAMLRequest", x, relay, nil))
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/saml/sso" {
		t.Fatalf("%d at %s", resp.StatusCode, resp.Request.URL)
	}
	if e.sess.logins != 1 {
		t.Errorf("logins = %d", e.sess.logins)
	}
	if strings.Contains(body, "<script>alert") || !strings.Contains(body, `<button type="submit">`) || !strings.Contains(body, "<noscript>") {
		t.Errorf("page:\n%s", body)
	}
	action, fields := parsePostPage(t, body)
	if action != atlassianACS || fields.Get("RelayState") != relay {
		t.Errorf("action %q relay %q", action, fields.Get("RelayState"))
	}
	r := decodeResponse(t, fields)
	if r.SelectAttrValue("Destination", "") != atlassianACS || r.SelectAttrValue("InResponseTo", "") != "_r1" {
		t.Errorf("Destination/InResponseTo: %v", r.Attr)
	}
	if err := validateWith(r, idpKP.Cert); err != nil {
		t.Error(err)
	}
	var sid string
	for id := range e.sess.sessions {
		sid = id
	}
	if p := e.sess.parts[sid]; len(p) != 1 || p[0].SP != atlassianEntity || p[0].NameID != alice.VirtualAddress {
		t.Errorf("participants %v", p)
	}
}

func statusOf(t *testing.T, r *etree.Element) (string, string) {
	sc := r.FindElement("./samlp:Status/samlp:StatusCode")
	sub := sc.FindElement("./samlp:StatusCode")
	s := ""
	if sub != nil {
		s = sub.SelectAttrValue("Value", "")
	}
	return sc.SelectAttrValue("Value", ""), s
}

func TestIsPassiveWithoutSession(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("one", SignResponse))
	x := authnRequestXML(reqOpts{Issuer: "https://one.test/sp", IssueInstant: samlTime(clock.Now()), ID: "_p1", IsPassive: true})
	resp, body := get(t, newClient(t), e.base+"/saml/sso?"+redirectQuery("SAMLRequest", x, "", nil))
	if resp.StatusCode != 200 || e.sess.logins != 0 {
		t.Fatalf("%d, logins %d", resp.StatusCode, e.sess.logins)
	}
	_, fields := parsePostPage(t, body)
	r := decodeResponse(t, fields)
	if c, s := statusOf(t, r); c != StatusResponder || s != StatusNoPassive {
		t.Errorf("status %s / %s", c, s)
	}
	if r.FindElement(".//saml:Assertion") != nil || r.SelectAttrValue("InResponseTo", "") != "_p1" {
		t.Error("NoPassive response shape")
	}
}

// ForceAuthn sends a logged-in member through the login again; the
// response follows once AuthnInstant is after the request.
func TestForceAuthn(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("one", SignResponse))
	browser := newClient(t)
	get(t, browser, e.base+"/login?continue=/bye")
	clock.Advance(time.Minute)
	x := authnRequestXML(reqOpts{Issuer: "https://one.test/sp", IssueInstant: samlTime(clock.Now()), ForceAuthn: true})
	resp, _ := get(t, noFollow(browser), e.base+"/saml/sso?"+redirectQuery("SAMLRequest", x, "", nil))
	loc := wantRedirect(t, resp, "/login?continue=")
	if !strings.Contains(loc, "force=1") {
		t.Errorf("login URL %q is not forced", loc)
	}
	clock.Advance(time.Second)
	resp, body := get(t, browser, e.base+loc)
	if resp.StatusCode != 200 || e.sess.logins != 2 {
		t.Fatalf("%d, logins %d", resp.StatusCode, e.sess.logins)
	}
	parsePostPage(t, body)
}

func TestLaunchAndPortal(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, atlassianSP(), genericSP("wiki", SignBoth))
	browser := newClient(t)
	resp, _ := get(t, noFollow(browser), e.base+"/saml/launch/atlassian")
	wantRedirect(t, resp, "/login?continue="+url.QueryEscape("/saml/launch/atlassian"))
	resp, body := get(t, browser, e.base+"/saml/launch/atlassian")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	action, fields := parsePostPage(t, body)
	r := decodeResponse(t, fields)
	if action != atlassianACS || fields.Get("RelayState") != "https://example.atlassian.net" || r.SelectAttr("InResponseTo") != nil {
		t.Errorf("launch: action %q relay %q", action, fields.Get("RelayState"))
	}
	if resp, _ := get(t, browser, e.base+"/saml/launch/nope"); resp.StatusCode != 404 {
		t.Errorf("unknown launch: %d", resp.StatusCode)
	}
	links := e.idp.Portal(alice)
	if len(links) != 2 || links[0].URL != "/saml/launch/atlassian" || links[1].Name != "wiki" {
		t.Errorf("portal %v", links)
	}
}

// SP-initiated logout from "signed" (Redirect, signed): the session ends,
// the other participant gets a signed LogoutRequest, and its LogoutResponse
// brings the chain to the LogoutResponse for "signed".
func TestSPInitiatedLogout(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	other := genericSP("other", SignResponse)
	other.SLO = []Endpoint{{Binding: BindingRedirect, Location: "https://other.test/slo?a=b"}}
	e := newEnv(t, clock, signedSP(), other, atlassianSP())
	browser := newClient(t)
	get(t, browser, e.base+"/login?continue=/bye")
	for _, n := range []string{"signed", "other", "atlassian"} {
		if resp, _ := get(t, browser, e.base+"/saml/launch/"+n); resp.StatusCode != 200 {
			t.Fatal(n, resp.StatusCode)
		}
	}
	var sid string
	for id := range e.sess.sessions {
		sid = id
	}
	parts := e.sess.parts[sid]
	signedNameID := parts[0].NameID

	lr := `<samlp:LogoutRequest xmlns:samlp="` + nsSAMLP + `" xmlns:saml="` + nsSAML + `" ID="_lo1" Version="2.0" IssueInstant="` + samlTime(clock.Now()) + `" Destination="` + e.base + `/saml/slo"><saml:Issuer>https://signed.test/sp</saml:Issuer><saml:NameID Format="` + NameIDFormatPersistent + `">` + signedNameID + `</saml:NameID><samlp:SessionIndex>` + parts[0].SessionIndex + `</samlp:SessionIndex></samlp:LogoutRequest>`
	// Unsigned: refused, the SP has a certificate.
	if resp, _ := get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr, "", nil)); resp.StatusCode != 400 {
		t.Fatalf("unsigned LogoutRequest: %d", resp.StatusCode)
	}
	resp, _ := get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr, "back", spKP.Key))
	loc := wantRedirect(t, resp, "https://other.test/slo?a=b&SAMLRequest=")
	if len(e.sess.sessions) != 0 {
		t.Error("the session was not ended")
	}
	// The LogoutRequest to "other" is signed by the IdP (query signature).
	u, _ := url.Parse(loc)
	in, err := readRedirect(u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyRedirect(in, []*x509.Certificate{idpKP.Cert}); err != nil {
		t.Fatalf("LogoutRequest signature: %v", err)
	}
	doc := etree.NewDocument()
	doc.ReadFromBytes(in.XML)
	req := doc.Root()
	if req.FindElement("./saml:NameID").Text() != parts[1].NameID || req.FindElement("./samlp:SessionIndex").Text() != parts[1].SessionIndex {
		t.Errorf("LogoutRequest to other:\n%s", in.XML)
	}
	// "other" answers.
	lresp := `<samlp:LogoutResponse xmlns:samlp="` + nsSAMLP + `" xmlns:saml="` + nsSAML + `" ID="_lr1" Version="2.0" IssueInstant="` + samlTime(clock.Now()) + `" InResponseTo="` + req.SelectAttrValue("ID", "") + `"><saml:Issuer>https://other.test/sp</saml:Issuer><samlp:Status><samlp:StatusCode Value="` + StatusSuccess + `"/></samlp:Status></samlp:LogoutResponse>`
	resp, _ = get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLResponse", lresp, "", nil))
	loc = wantRedirect(t, resp, "https://signed.test/slo?SAMLResponse=")
	u, _ = url.Parse(loc)
	in, err = readRedirect(u.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyRedirect(in, []*x509.Certificate{idpKP.Cert}); err != nil || in.RelayState != "back" {
		t.Fatalf("LogoutResponse signature %v, relay %q", err, in.RelayState)
	}
	doc = etree.NewDocument()
	doc.ReadFromBytes(in.XML)
	if doc.Root().SelectAttrValue("InResponseTo", "") != "_lo1" {
		t.Errorf("LogoutResponse:\n%s", in.XML)
	}
	// A replayed LogoutResponse finds no chain.
	if resp, _ := get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLResponse", lresp, "", nil)); resp.StatusCode != 400 {
		t.Errorf("replayed LogoutResponse: %d", resp.StatusCode)
	}
}

// A comment inside a LogoutRequest's NameID is refused.
func TestLogoutCommentInjection(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("one", SignResponse))
	lr := `<samlp:LogoutRequest xmlns:samlp="` + nsSAMLP + `" xmlns:saml="` + nsSAML + `" ID="_lo1" Version="2.0" IssueInstant="` + samlTime(clock.Now()) + `"><saml:Issuer>https://one.test/sp</saml:Issuer><saml:NameID>alice@id.example.org<!---->.evil</saml:NameID></samlp:LogoutRequest>`
	resp, body := get(t, newClient(t), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr, "", nil))
	if resp.StatusCode != 400 || !strings.Contains(body, "comments") {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}
