package saml

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// signedSP verifies its requests with testdata/sp.crt (certificate_file).
func signedSP(t *testing.T) spConf {
	return spConf{Name: "signed", EntityID: "https://signed.test/sp", ACSURL: "https://signed.test/acs",
		CertificateFile: fixture(t, "sp.crt"), Attributes: "generic", Sign: "response"}
}

// TestRefusals sends hostile and wrong requests from a logged-in browser
// (so that anything not refused would be answered with an assertion): each
// gets a 4xx and no SAML response. Positive controls show that the same
// request, made right, is answered.
func TestRefusals(t *testing.T) {
	t.Parallel()
	atl := atlassianSPs[0]
	signed := signedSP(t)
	in := startIDB(t, atl, signed)
	u := in.addUser(t, "refuser", false)
	browser := newClient()
	login(t, in, browser, u.Name)
	nf := noFollow(browser)
	sso := in.URL + "/saml/sso"
	spKey, otherKey := loadKey(t, "sp.key"), loadKey(t, "other.key")

	refused := func(t *testing.T, what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Errorf("%s: %d %s, want a 4xx refusal:\n%s", what, resp.StatusCode, resp.Header.Get("Location"), truncate(body, 500))
		}
		noAssertion(t, what, resp, body)
	}
	answered := func(t *testing.T, what string, resp *http.Response, body string) {
		t.Helper()
		if p, ok := parsePostPage(body); resp.StatusCode != 200 || !ok || p.Fields.Get("SAMLResponse") == "" {
			t.Fatalf("control %s: %d, no SAMLResponse:\n%s", what, resp.StatusCode, truncate(body, 800))
		}
	}
	postReq := func(t *testing.T, xml string) (*http.Response, string) {
		t.Helper()
		return postForm(t, nf, sso, url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(xml))}})
	}

	t.Run("control", func(t *testing.T) {
		r := &authnReq{Issuer: atl.EntityID, Destination: sso, ACSURL: atl.ACSURL}
		resp, body := get(t, nf, redirectURL(in, r.xml(), "", nil))
		answered(t, "Atlassian request", resp, body)
	})

	t.Run("unknown issuer", func(t *testing.T) {
		r := &authnReq{Issuer: "https://unknown.test/sp", Destination: sso}
		resp, body := get(t, nf, redirectURL(in, r.xml(), "", nil))
		refused(t, "Redirect", resp, body)
		resp, body = postReq(t, (&authnReq{Issuer: "https://unknown.test/sp", Destination: sso}).xml())
		refused(t, "POST", resp, body)
	})

	t.Run("unregistered ACS", func(t *testing.T) {
		for _, acs := range []string{
			"https://evil.test/acs",
			"https://auth.atlassian.com/login/callback",                        // the query string left out
			"https://auth.atlassian.com/login/callback?connection=saml-9999",   // another tenant
			"https://auth.atlassian.com/login/callback?connection=saml-0000&x", // a suffix
		} {
			r := &authnReq{Issuer: atl.EntityID, Destination: sso, ACSURL: acs}
			resp, body := get(t, nf, redirectURL(in, r.xml(), "", nil))
			refused(t, acs, resp, body)
			if strings.Contains(body, `href="https://evil.test`) || strings.Contains(body, `action="https://evil.test`) {
				t.Errorf("%s: the refusal page links to the unregistered ACS", acs)
			}
		}
		// An AssertionConsumerServiceIndex that is not registered.
		xml := strings.Replace((&authnReq{Issuer: atl.EntityID, Destination: sso}).xml(),
			` Destination=`, ` AssertionConsumerServiceIndex="7" Destination=`, 1)
		resp, body := get(t, nf, redirectURL(in, xml, "", nil))
		refused(t, "ACS index 7", resp, body)
	})

	t.Run("request signature", func(t *testing.T) {
		mk := func() string {
			return (&authnReq{Issuer: signed.EntityID, Destination: sso, ACSURL: signed.ACSURL}).xml()
		}
		resp, body := get(t, nf, redirectURL(in, mk(), "rs", spKey))
		answered(t, "signed with the registered key", resp, body)

		resp, body = get(t, nf, redirectURL(in, mk(), "rs", otherKey))
		refused(t, "signed with another key", resp, body)
		resp, body = get(t, nf, redirectURL(in, mk(), "rs", nil))
		refused(t, "unsigned", resp, body)
		// A correct signature, then RelayState changed.
		u := strings.Replace(redirectURL(in, mk(), "rs", spKey), "RelayState=rs", "RelayState=rt", 1)
		resp, body = get(t, nf, u)
		refused(t, "RelayState changed after signing", resp, body)
		// SHA-1 is refused even with the right key.
		u = strings.Replace(redirectURL(in, mk(), "", spKey), url.QueryEscape(sigAlgRSASHA256),
			url.QueryEscape("http://www.w3.org/2000/09/xmldsig#rsa-sha1"), 1)
		resp, body = get(t, nf, u)
		refused(t, "SigAlg swapped to rsa-sha1", resp, body)
		// POST binding without an enveloped signature.
		resp, body = postReq(t, mk())
		refused(t, "unsigned POST", resp, body)
	})

	t.Run("oversized", func(t *testing.T) {
		// 200 KiB of random bytes: does not compress, so the encoded
		// parameter alone is over any sane limit.
		big := make([]byte, 200<<10)
		rand.Read(big)
		pad := base64.StdEncoding.EncodeToString(big)
		xml := strings.Replace((&authnReq{Issuer: atl.EntityID, Destination: sso}).xml(),
			"<saml:Issuer>", "<!--"+pad+"--><saml:Issuer>", 1)
		resp, body := get(t, nf, redirectURL(in, xml, "", nil))
		refused(t, "Redirect", resp, body)
		resp, body = postReq(t, xml)
		refused(t, "POST", resp, body)
		// Under the encoded limit but over the decoded one.
		mid := strings.Replace((&authnReq{Issuer: atl.EntityID, Destination: sso}).xml(),
			"<saml:Issuer>", "<!--"+strings.Repeat("A", 90<<10)+"--><saml:Issuer>", 1)
		resp, body = postReq(t, mid)
		refused(t, "POST, 90 KiB decoded", resp, body)
		// RelayState over 1 KiB.
		resp, body = get(t, nf, redirectURL(in, (&authnReq{Issuer: atl.EntityID, Destination: sso}).xml(), strings.Repeat("r", 1100), nil))
		refused(t, "RelayState of 1100 bytes", resp, body)
	})

	t.Run("deflate bomb", func(t *testing.T) {
		// 32 MiB of zeros deflate to about 32 KiB.
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
		fw.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="` + nsSAMLP + `"><!--`))
		zeros := make([]byte, 1<<20)
		for range 32 {
			fw.Write(zeros)
		}
		fw.Close()
		enc := base64.StdEncoding.EncodeToString(buf.Bytes())
		if len(enc) > 100<<10 {
			t.Fatalf("the bomb is %d bytes encoded: it would be refused before inflating", len(enc))
		}
		q := "SAMLRequest=" + url.QueryEscape(enc)
		resp, body := get(t, nf, sso+"?"+q)
		refused(t, "deflate bomb", resp, body)
		// Refused by the inflate limit (not after inflating 32 MiB, and not
		// for some other reason such as the comment it carries).
		if !strings.Contains(body, "too large") {
			t.Errorf("deflate bomb not refused by the size limit: %s", truncate(body, 300))
		}
	})

	t.Run("DTD", func(t *testing.T) {
		base := (&authnReq{Issuer: "ISSUER", Destination: sso}).xml()
		for name, xml := range map[string]string{
			"entity in Issuer": `<!DOCTYPE samlp:AuthnRequest [<!ENTITY iss "` + atl.EntityID + `">]>` +
				strings.Replace(base, "ISSUER", "&iss;", 1),
			"plain DOCTYPE": `<!DOCTYPE samlp:AuthnRequest>` + strings.Replace(base, "ISSUER", atl.EntityID, 1),
			"billion laughs": `<!DOCTYPE samlp:AuthnRequest [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">` +
				`<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>` +
				strings.Replace(base, "ISSUER", atl.EntityID+"&d;", 1),
		} {
			resp, body := get(t, nf, redirectURL(in, xml, "", nil))
			refused(t, name+" (Redirect)", resp, body)
			resp, body = postReq(t, xml)
			refused(t, name+" (POST)", resp, body)
		}
	})
}

// TestAccountStates: an unverified account gets no assertion; a locked one
// neither, and its existing session ends; a throttled one (31 wrong
// passwords over HTTP) keeps SSO from its existing session.
func TestAccountStates(t *testing.T) {
	t.Parallel()
	atl := atlassianSPs[0]
	in := startIDB(t, atl)
	sso := in.URL + "/saml/sso"
	spInitiated := func(t *testing.T, c *http.Client) (*http.Response, string, *authnReq) {
		t.Helper()
		r := &authnReq{Issuer: atl.EntityID, Destination: sso, ACSURL: atl.ACSURL}
		resp, body := get(t, c, redirectURL(in, r.xml(), "", nil))
		return resp, body, r
	}

	t.Run("unverified", func(t *testing.T) {
		u := in.addUser(t, "unverified", true)
		c := newClient()
		resp, body, _ := spInitiated(t, c)
		resp, body = submitLogin(t, in, c, resp, body, u.Name, password)
		noAssertion(t, "unverified login", resp, body)
		if !isLoginPage(in, resp, body) && resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("unverified login ended on %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp, body = get(t, c, in.URL+"/saml/launch/"+atl.Name)
		noAssertion(t, "unverified launch", resp, body)
	})

	t.Run("locked", func(t *testing.T) {
		u := in.addUser(t, "lockme", false)
		c := newClient()
		login(t, in, c, u.Name)
		resp, body := get(t, c, in.URL+"/saml/launch/"+atl.Name)
		mustPostPage(t, resp, body) // control: SSO works before the lock
		in.cli(t, "", "user", "lock", u.Name)

		resp, body = get(t, c, in.URL+"/saml/launch/"+atl.Name)
		noAssertion(t, "launch after lock", resp, body)
		resp, body, _ = spInitiated(t, c)
		noAssertion(t, "AuthnRequest after lock", resp, body)
		resp, _ = get(t, noFollow(c), in.URL+"/account")
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/login") {
			t.Errorf("the locked member's session survived: GET /account %d %q", resp.StatusCode, loc)
		}
		// Nor can the locked member log in again.
		c2 := newClient()
		resp, body, _ = spInitiated(t, c2)
		resp, body = submitLogin(t, in, c2, resp, body, u.Name, password)
		noAssertion(t, "login after lock", resp, body)
	})

	t.Run("throttled keeps SSO", func(t *testing.T) {
		u := in.addUser(t, "throttled", false)
		member := newClient()
		login(t, in, member, u.Name)
		attacker := newClient()
		for i := range 31 {
			resp, body := get(t, attacker, in.URL+"/login")
			resp, body = submitLogin(t, in, attacker, resp, body, u.Name, "wrong password "+string(rune('a'+i%26)))
			if !isLoginPage(in, resp, body) {
				t.Fatalf("wrong password %d: ended on %d %s", i+1, resp.StatusCode, resp.Request.URL)
			}
		}
		// Control: the throttle is on, so even the right password is
		// refused now.
		c := newClient()
		resp, body := get(t, c, in.URL+"/login")
		resp, body = submitLogin(t, in, c, resp, body, u.Name, password)
		if !isLoginPage(in, resp, body) {
			t.Errorf("the right password was accepted after 31 wrong ones (%d %s): is the throttle off?", resp.StatusCode, resp.Request.URL)
		}
		// The member's existing session still gets SSO.
		resp, body = get(t, member, in.URL+"/saml/launch/"+atl.Name)
		mustPostPage(t, resp, body)
		resp, body, r := spInitiated(t, member)
		p := mustPostPage(t, resp, body)
		if got := parseXML(t, p.responseXML(t)).SelectAttrValue("InResponseTo", ""); got != r.ID {
			t.Errorf("InResponseTo %q, want %q", got, r.ID)
		}
	})
}
