package saml

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idbridge/idbridge/internal/testlib"
)

// Atlassian Cloud cannot be reached from a test, so this SP is a double that
// follows Atlassian's published requirements for an external SAML IdP
// (Atlassian Guard, "Configure SAML single sign-on"): the SP entity id
// https://auth.atlassian.com/saml/<id>, the ACS
// https://auth.atlassian.com/login/callback?connection=saml-<id> (with its
// query string, which the Response's Destination must repeat exactly),
// AuthnRequests by HTTP-Redirect, the Response by HTTP-POST, NameID = the
// account's email (for idbridge the virtual address) in the emailAddress
// format, and exactly the claims givenname, surname and name, where name is
// a stable id of the account, never an email. IdP-initiated SSO carries the
// site URL as RelayState.

const atlassianSite = "https://example.atlassian.net"

// atlassianSP is an Atlassian-shaped SP; id is Atlassian's directory id.
func atlassianSP(name, id, sign string) spConf {
	return spConf{Name: name, EntityID: "https://auth.atlassian.com/saml/" + id,
		ACSURL:     "https://auth.atlassian.com/login/callback?connection=saml-" + id,
		Attributes: "atlassian", NameID: "virtual_address", Sign: sign, DefaultRelayState: atlassianSite}
}

// The three signing variants, one SP entry each.
var atlassianSPs = []spConf{
	atlassianSP("atlassian", "0000", "response"),
	atlassianSP("atlassian-assertion", "0001", "assertion"),
	atlassianSP("atlassian-both", "0002", "both"),
}

// TestAtlassian logs in to each Atlassian-shaped SP through its launch URL
// and through a Redirect-binding AuthnRequest, and checks every value
// Atlassian reads, and the signatures with xmlsec1 against the certificate
// that /saml/metadata publishes.
func TestAtlassian(t *testing.T) {
	t.Parallel()
	xmlsec := testlib.Need(t, "xmlsec1")
	in := startIDB(t, atlassianSPs...)
	u := in.addUser(t, "atluser", false)
	_, certs := metadata(t, in)
	if len(certs) != 1 {
		t.Fatalf("metadata publishes %d certificates, want 1", len(certs))
	}
	other, err := os.ReadFile(fixture(t, "other.crt"))
	if err != nil {
		t.Fatal(err)
	}
	browser := newClient()
	login(t, in, browser, u.Name)

	for _, sp := range atlassianSPs {
		t.Run(sp.Name, func(t *testing.T) {
			t.Run("launch", func(t *testing.T) {
				resp, body := get(t, browser, in.URL+"/saml/launch/"+sp.Name)
				p := mustPostPage(t, resp, body)
				raw := checkAtlassian(t, in, u, sp, p, "", atlassianSite)
				checkSignatures(t, xmlsec, raw, sp.Sign, certs[0], other)
			})
			t.Run("AuthnRequest", func(t *testing.T) {
				req := &authnReq{Issuer: sp.EntityID, Destination: in.URL + "/saml/sso", ACSURL: sp.ACSURL}
				resp, body := get(t, browser, redirectURL(in, req.xml(), "relay-"+sp.Name, nil))
				p := mustPostPage(t, resp, body)
				raw := checkAtlassian(t, in, u, sp, p, req.ID, "relay-"+sp.Name)
				checkSignatures(t, xmlsec, raw, sp.Sign, certs[0], other)
			})
		})
	}

	t.Run("portal", func(t *testing.T) {
		// The portal lists every SP with its launch URL, so that nobody
		// has to type their virtual address at Atlassian.
		resp, body := get(t, browser, in.URL+"/")
		for _, sp := range atlassianSPs {
			if !strings.Contains(body, `href="/saml/launch/`+sp.Name+`"`) {
				t.Errorf("the portal (%d) does not link /saml/launch/%s", resp.StatusCode, sp.Name)
			}
		}
		if t.Failed() {
			t.Logf("portal:\n%s", truncate(body, 3000))
		}
	})

	t.Run("AuthnRequest without ACS URL", func(t *testing.T) {
		sp := atlassianSPs[0]
		req := &authnReq{Issuer: sp.EntityID, Destination: in.URL + "/saml/sso"}
		resp, body := get(t, browser, redirectURL(in, req.xml(), "", nil))
		checkAtlassian(t, in, u, sp, mustPostPage(t, resp, body), req.ID, "")
	})
}

// checkAtlassian checks what Atlassian reads in the POST page p and returns
// the decoded Response.
func checkAtlassian(t *testing.T, in *idb, u user, sp spConf, p postPage, inResponseTo, relayState string) []byte {
	t.Helper()
	if p.Action != sp.ACSURL {
		t.Errorf("form action %q, want the ACS %q", p.Action, sp.ACSURL)
	}
	if got := p.Fields.Get("RelayState"); got != relayState {
		t.Errorf("RelayState %q, want %q", got, relayState)
	}
	raw := p.responseXML(t)
	if bytes.Contains(raw, []byte("<!DOCTYPE")) {
		t.Errorf("response has a DOCTYPE")
	}
	root := parseXML(t, raw)
	errorf := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format+"\nresponse:\n%s", append(args, truncate(string(raw), 6000))...)
	}
	if root.Tag != "Response" || root.NamespaceURI() != nsSAMLP {
		t.Fatalf("root element {%s}%s", root.NamespaceURI(), root.Tag)
	}
	if got := root.SelectAttrValue("Destination", ""); got != sp.ACSURL {
		errorf("Destination %q, want exactly %q", got, sp.ACSURL)
	}
	if got := root.SelectAttrValue("InResponseTo", ""); got != inResponseTo {
		errorf("Response InResponseTo %q, want %q", got, inResponseTo)
	}
	text := func(path string) string {
		if el := root.FindElement(path); el != nil {
			return el.Text()
		}
		return ""
	}
	attr := func(path, name string) string {
		if el := root.FindElement(path); el != nil {
			return el.SelectAttrValue(name, "")
		}
		return ""
	}
	if got, want := text("./Issuer"), in.URL+"/saml/metadata"; got != want {
		errorf("Issuer %q, want %q", got, want)
	}
	if got := attr("./Status/StatusCode", "Value"); got != "urn:oasis:names:tc:SAML:2.0:status:Success" {
		errorf("status %q", got)
	}
	if n := len(root.FindElements("./Assertion")); n != 1 {
		t.Fatalf("%d assertions, want 1", n)
	}
	if got := text("./Assertion/Subject/NameID"); got != u.virtual() {
		errorf("NameID %q, want the virtual address %q", got, u.virtual())
	}
	if got := attr("./Assertion/Subject/NameID", "Format"); got != nameIDFormatEmail {
		errorf("NameID Format %q, want %q", got, nameIDFormatEmail)
	}
	scd := "./Assertion/Subject/SubjectConfirmation/SubjectConfirmationData"
	if got := attr(scd, "Recipient"); got != sp.ACSURL {
		errorf("Recipient %q, want %q", got, sp.ACSURL)
	}
	if got := attr(scd, "InResponseTo"); got != inResponseTo {
		errorf("SubjectConfirmationData InResponseTo %q, want %q", got, inResponseTo)
	}
	if na, err := time.Parse(time.RFC3339, attr(scd, "NotOnOrAfter")); err != nil || !na.After(time.Now()) {
		errorf("SubjectConfirmationData NotOnOrAfter %q", attr(scd, "NotOnOrAfter"))
	}
	if got := text("./Assertion/Conditions/AudienceRestriction/Audience"); got != sp.EntityID {
		errorf("Audience %q, want %q", got, sp.EntityID)
	}
	if attr("./Assertion/AuthnStatement", "SessionIndex") == "" {
		errorf("no SessionIndex")
	}
	// Exactly the three claims, one value each.
	want := map[string]string{claimGivenName: u.First, claimSurname: u.Last, claimName: u.ID}
	attrs := root.FindElements("./Assertion/AttributeStatement/Attribute")
	if len(attrs) != 3 {
		errorf("%d attributes, want exactly givenname, surname and name", len(attrs))
	}
	for _, a := range attrs {
		name := a.SelectAttrValue("Name", "")
		vals := a.SelectElements("AttributeValue")
		w, ok := want[name]
		if !ok {
			errorf("unexpected attribute %q", name)
			continue
		}
		delete(want, name)
		if len(vals) != 1 || vals[0].Text() != w {
			var got []string
			for _, v := range vals {
				got = append(got, v.Text())
			}
			errorf("attribute %s = %q, want [%q]", name, got, w)
		}
		if name == claimName && len(vals) == 1 && strings.Contains(vals[0].Text(), "@") {
			errorf("the name claim %q looks like an email; it must be the stable account id", vals[0].Text())
		}
	}
	for name := range want {
		errorf("attribute %s missing", name)
	}
	return raw
}

// checkSignatures checks that raw carries exactly the signatures that sign
// asks for, each over its own element, and that xmlsec1 verifies each with
// the published certificate and none with another one.
func checkSignatures(t *testing.T, xmlsec string, raw []byte, sign string, cert, other []byte) {
	t.Helper()
	root := parseXML(t, raw)
	assertion := root.FindElement("./Assertion")
	cases := []struct {
		el     *etree.Element
		want   bool
		idAttr string
		xpath  string
	}{
		{root, sign == "response" || sign == "both", idAttrResponse, xpathResponseSig},
		{assertion, sign == "assertion" || sign == "both", idAttrAssertion, xpathAssertionSig},
	}
	for _, c := range cases {
		sig := c.el.SelectElement("Signature")
		if (sig != nil) != c.want {
			t.Errorf("sign: %s: <%s> signed = %t", sign, c.el.Tag, sig != nil)
			continue
		}
		if sig == nil {
			continue
		}
		ref := sig.FindElement("./SignedInfo/Reference")
		if ref == nil || ref.SelectAttrValue("URI", "") != "#"+c.el.SelectAttrValue("ID", "") {
			t.Errorf("<%s> signature does not reference its own ID", c.el.Tag)
		}
		if alg := sig.FindElement("./SignedInfo/SignatureMethod"); alg == nil || alg.SelectAttrValue("Algorithm", "") != sigAlgRSASHA256 {
			t.Errorf("<%s> signature method is not RSA-SHA256", c.el.Tag)
		}
		if err := xmlsecVerify(t, xmlsec, raw, cert, c.idAttr, c.xpath); err != nil {
			t.Errorf("xmlsec1 --verify of the <%s> signature with the published certificate: %v", c.el.Tag, err)
		}
		if err := xmlsecVerify(t, xmlsec, raw, other, c.idAttr, c.xpath); err == nil {
			t.Errorf("xmlsec1 verified the <%s> signature with an unrelated certificate", c.el.Tag)
		}
		// Both signatures cover the NameID: a changed one must not verify.
		nameID := root.FindElement("./Assertion/Subject/NameID").Text()
		evil := bytes.Replace(raw, []byte(">"+nameID+"<"), []byte(">mallory@id.example.org<"), 1)
		if bytes.Equal(evil, raw) {
			t.Fatalf("cannot find the NameID %q in the raw response", nameID)
		}
		if err := xmlsecVerify(t, xmlsec, evil, cert, c.idAttr, c.xpath); err == nil {
			t.Errorf("xmlsec1 verified the <%s> signature of a tampered response", c.el.Tag)
		}
	}
}
