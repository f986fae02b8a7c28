package saml

import (
	"bytes"
	"compress/flate"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// signedSP is an SP that signs its AuthnRequests with spKP.
func signedSP() ServiceProvider {
	testKeys()
	sp := genericSP("signed", SignResponse)
	sp.ACS = append(sp.ACS, Endpoint{Index: 7, Binding: BindingPOST, Location: "https://signed.test/acs2?x=1&y=2"})
	sp.SLO = []Endpoint{{Binding: BindingRedirect, Location: "https://signed.test/slo"}}
	sp.Certificates = []*x509.Certificate{spKP.Cert}
	sp.AuthnRequestsSigned = true
	return sp
}

// TestRefusals: each hostile or wrong request is answered 400, with no
// response and nothing kept server-side.
func TestRefusals(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("one", SignResponse), signedSP())
	now := samlTime(clock.Now())
	ok := reqOpts{Issuer: "https://one.test/sp", IssueInstant: now}
	with := func(f func(*reqOpts)) string { o := ok; f(&o); return authnRequestXML(o) }

	bomb := func() string { // 50 MB of zeros: a few tens of KB deflated
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		fw.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="` + nsSAMLP + `">`))
		zero := make([]byte, 1<<20)
		for i := 0; i < 50; i++ {
			fw.Write(zero)
		}
		fw.Close()
		return "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	}()
	signedOK := authnRequestXML(reqOpts{Issuer: "https://signed.test/sp", IssueInstant: now})

	cases := []struct {
		name  string
		query string     // GET /saml/sso?query
		post  url.Values // or POST /saml/sso
		want  string     // in the refusal text
	}{
		{"unknown issuer", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.Issuer = "https://evil.test/sp" }), "", nil), nil, "unknown issuer"},
		{"unregistered ACS URL", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.ACSURL = "https://evil.test/acs" }), "", nil), nil, "not registered"},
		{"ACS URL differs in query", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.ACSURL = "https://one.test/acs?x=1" }), "", nil), nil, "not registered"},
		{"unregistered ACS index", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.ACSIndex = "2" }), "", nil), nil, "not registered"},
		{"ACS URL and index", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.ACSIndex = "1"; o.ACSURL = "https://one.test/acs" }), "", nil), nil, "mutually exclusive"},
		{"unsigned when required", redirectQuery("SAMLRequest", signedOK, "", nil), nil, "must be signed"},
		{"signed with another key", redirectQuery("SAMLRequest", signedOK, "", otherKP.Key), nil, "bad signature"},
		{"RelayState changed after signing", strings.Replace(redirectQuery("SAMLRequest", signedOK, "a", spKP.Key), "RelayState=a", "RelayState=b", 1), nil, "bad signature"},
		{"SHA-1 SigAlg", strings.Replace(redirectQuery("SAMLRequest", signedOK, "", spKP.Key), url.QueryEscape(sigAlgRSASHA256), url.QueryEscape("http://www.w3.org/2000/09/xmldsig#rsa-sha1"), 1), nil, "not accepted"},
		{"POST signed with another key", "", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(signXML(t, signedOK, otherKP)))}}, "bad signature"},
		{"POST signed then tampered", "", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(strings.Replace(signXML(t, signedOK, spKP), `AllowCreate="true"`, `AllowCreate="false"`, 1)))}}, "bad signature"},
		{"deflate bomb", bomb, nil, "too large"},
		{"oversized POST", "", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(with(func(o *reqOpts) { o.Issuer = strings.Repeat("a", 70<<10) })))}}, "too large"},
		{"oversized redirect", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.ID = "_" + strings.Repeat("a", 100<<10) }), "", nil), nil, "too large"},
		{"DTD", redirectQuery("SAMLRequest", `<!DOCTYPE x [<!ENTITY e "https://one.test/sp">]>`+with(func(o *reqOpts) { o.Issuer = "&e;" }), "", nil), nil, "DTD"},
		{"entity in POST", "", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(`<!ENTITY e SYSTEM "file:///etc/passwd">` + with(func(*reqOpts) {})))}}, "DTD"},
		{"RelayState over 1 KiB", redirectQuery("SAMLRequest", with(func(*reqOpts) {}), strings.Repeat("r", 1025), nil), nil, "RelayState"},
		{"POST RelayState over 1 KiB", "", url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(with(func(*reqOpts) {})))}, "RelayState": {strings.Repeat("r", 1025)}}, "RelayState"},
		{"comment in Issuer", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.Issuer = "https://one.test/sp" }), "", nil) + "", nil, ""}, // replaced below
		{"processing instruction", redirectQuery("SAMLRequest", strings.Replace(with(func(*reqOpts) {}), "<saml:Issuer>", "<?evil x?><saml:Issuer>", 1), "", nil), nil, "processing instructions"},
		{"two Issuers", redirectQuery("SAMLRequest", strings.Replace(with(func(*reqOpts) {}), "<samlp:NameIDPolicy", "<saml:Issuer>https://evil.test/sp</saml:Issuer><samlp:NameIDPolicy", 1), "", nil), nil, "more than one Issuer"},
		{"Issuer in the wrong namespace", redirectQuery("SAMLRequest", strings.Replace(with(func(*reqOpts) {}), "<saml:Issuer>", `<saml:Issuer xmlns:saml="urn:evil">`, 1), "", nil), nil, "no Issuer"},
		{"old IssueInstant", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.IssueInstant = samlTime(clock.Now().Add(-time.Hour)) }), "", nil), nil, "IssueInstant"},
		{"future IssueInstant", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.IssueInstant = samlTime(clock.Now().Add(time.Hour)) }), "", nil), nil, "IssueInstant"},
		{"wrong Destination", redirectQuery("SAMLRequest", with(func(o *reqOpts) { o.Destination = "https://other-idp.test/sso" }), "", nil), nil, "Destination"},
		{"duplicate attribute", redirectQuery("SAMLRequest", strings.Replace(with(func(*reqOpts) {}), `Version="2.0"`, `Version="2.0" Version="2.0"`, 1), "", nil), nil, "duplicate attribute"},
		{"not base64", "SAMLRequest=%%%", nil, ""},
		{"SAMLRequest twice", redirectQuery("SAMLRequest", with(func(*reqOpts) {}), "", nil) + "&" + redirectQuery("SAMLRequest", with(func(*reqOpts) {}), "", nil), nil, "twice"},
	}
	// Comment injection: "https://one.test<!---->/sp" is a known SP once
	// the comment is dropped; it must be refused, not read either way.
	cases[18].query = redirectQuery("SAMLRequest", strings.Replace(with(func(*reqOpts) {}), "https://one.test/sp", "https://one.test<!---->/sp", 1), "", nil)
	cases[18].want = "comments"

	cl := noFollow(newClient(t))
	e.sess.login("alice") // a session exists; it must not matter
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if c.post != nil {
				resp, err = cl.PostForm(e.base+"/saml/sso", c.post)
			} else {
				resp, err = cl.Get(e.base + "/saml/sso?" + c.query)
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", resp.StatusCode, truncate(string(body), 300))
			}
			if !strings.Contains(string(body), c.want) {
				t.Errorf("body %q does not say %q", body, c.want)
			}
			if strings.Contains(string(body), "SAMLResponse") {
				t.Error("a refusal carried a response")
			}
		})
	}
	if len(e.pend.m) != 0 {
		t.Errorf("refused requests were kept: %d", len(e.pend.m))
	}
}

// Accepted request variants: signed Redirect, signed POST, a registered
// ACS by URL (with its query string) and by index.
func TestAcceptedRequests(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, signedSP())
	now := samlTime(clock.Now())
	base := reqOpts{Issuer: "https://signed.test/sp", IssueInstant: now, Destination: e.base + "/saml/sso"}
	cases := []struct {
		name    string
		o       func(*reqOpts)
		post    bool
		wantACS string
	}{
		{"default ACS", func(*reqOpts) {}, false, "https://signed.test/acs"},
		{"ACS by index", func(o *reqOpts) { o.ACSIndex = "7" }, false, "https://signed.test/acs2?x=1&y=2"},
		{"ACS by URL with query", func(o *reqOpts) { o.ACSURL = "https://signed.test/acs2?x=1&y=2" }, false, "https://signed.test/acs2?x=1&y=2"},
		{"POST signed", func(*reqOpts) {}, true, "https://signed.test/acs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base
			o.ID = newID()
			c.o(&o)
			x := authnRequestXML(o)
			var in *inbound
			var err error
			if c.post {
				r := httptest.NewRequest("POST", "/saml/sso", strings.NewReader(url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(signXML(t, x, spKP)))}}.Encode()))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				in, err = readInbound(httptest.NewRecorder(), r)
			} else {
				in, err = readRedirect(redirectQuery("SAMLRequest", x, "rs", spKP.Key))
			}
			if err != nil {
				t.Fatal(err)
			}
			req, err := e.idp.parseAuthnRequest(in)
			if err != nil {
				t.Fatal(err)
			}
			if !req.Signed || req.ID != o.ID || req.ACS.Location != c.wantACS {
				t.Errorf("signed %v id %q acs %q", req.Signed, req.ID, req.ACS.Location)
			}
		})
	}
}

// FuzzParseRequest feeds arbitrary messages through both bindings' decoders
// and the AuthnRequest and LogoutRequest checks: no panic, and nothing
// unsigned is accepted from the signing SP.
func FuzzParseRequest(f *testing.F) {
	clock := &fakeClock{t: testNow}
	e := newEnv(f, clock, genericSP("one", SignResponse), signedSP())
	now := samlTime(testNow)
	f.Add([]byte(authnRequestXML(reqOpts{Issuer: "https://one.test/sp", IssueInstant: now})), "")
	f.Add([]byte(authnRequestXML(reqOpts{Issuer: "https://one.test/sp", IssueInstant: now, ACSIndex: "1", ForceAuthn: true})), "RelayState=x")
	f.Add([]byte(authnRequestXML(reqOpts{Issuer: "https://one.test<!---->/sp", IssueInstant: now})), "")
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`), "")
	f.Add([]byte(`<samlp:LogoutRequest xmlns:samlp="`+nsSAMLP+`" xmlns:saml="`+nsSAML+`" ID="_1" Version="2.0" IssueInstant="`+now+`"><saml:Issuer>https://one.test/sp</saml:Issuer><saml:NameID>x</saml:NameID><samlp:SessionIndex>s</samlp:SessionIndex></samlp:LogoutRequest>`), "")
	f.Fuzz(func(t *testing.T, xml []byte, query string) {
		for _, in := range []*inbound{{Binding: BindingPOST, Param: "SAMLRequest", XML: xml}, {Binding: BindingRedirect, Param: "SAMLRequest", XML: xml}} {
			if req, err := e.idp.parseAuthnRequest(in); err == nil && req.SP.AuthnRequestsSigned {
				t.Fatalf("unsigned request accepted from %s", req.SP.Name)
			}
			e.idp.parseLogoutRequest(in)
			e.idp.parseLogoutResponse(in)
		}
		if in, err := readRedirect(query); err == nil {
			e.idp.parseAuthnRequest(in)
		}
	})
}
