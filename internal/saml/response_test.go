package saml

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/idbridge/idbridge/internal/testlib"
)

const (
	atlassianEntity = "https://auth.atlassian.com/saml/0000"
	atlassianACS    = "https://auth.atlassian.com/login/callback?connection=saml-0000"
)

func atlassianSP() ServiceProvider {
	return ServiceProvider{
		Name: "atlassian", EntityID: atlassianEntity,
		ACS:    []Endpoint{{Index: 0, IsDefault: true, Binding: BindingPOST, Location: atlassianACS}},
		NameID: NameIDVirtualAddress, Attributes: AttributesAtlassian, Sign: SignResponse,
		DefaultRelayState: "https://example.atlassian.net",
	}
}

func genericSP(name string, sign SignMode) ServiceProvider {
	return ServiceProvider{
		Name: name, EntityID: "https://" + name + ".test/sp",
		ACS:    []Endpoint{{Index: 1, Binding: BindingPOST, Location: "https://" + name + ".test/acs"}},
		NameID: NameIDPersistent, Attributes: AttributesGeneric, Sign: sign,
	}
}

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testSession() Session {
	return Session{ID: "sess-1", AuthnInstant: testNow.Add(-time.Minute), Principal: alice}
}

func build(t testing.TB, e *env, spName, inResponseTo string) *etree.Element {
	t.Helper()
	sp, _ := e.idp.sps.ByName(spName)
	acs, _ := sp.defaultACS()
	res, err := e.idp.buildResponse(context.Background(), sp, acs.Location, inResponseTo, testSession())
	if err != nil {
		t.Fatal(err)
	}
	return res.Response
}

func serialize(t testing.TB, el *etree.Element) []byte {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every signing variant verifies with xmlsec1 against the published
// certificate, and a tampered copy does not.
func TestXmlsec1VerifiesEverySigningMode(t *testing.T) {
	xmlsec := testlib.Need(t, "xmlsec1")
	clock := &fakeClock{t: time.Now()}
	e := newEnv(t, clock, genericSP("resp", SignResponse), genericSP("asrt", SignAssertion), genericSP("both", SignBoth), atlassianSP())
	dir := t.TempDir()
	cert := writeFile(t, dir, "cert.pem", certPEM(idpKP.Cert))
	other := writeFile(t, dir, "other.pem", certPEM(otherKP.Cert))
	const respID = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
	const asrtID = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
	verify := func(file, certFile string, args ...string) error {
		a := append([]string{"--verify", "--trusted-pem", certFile}, args...)
		out, err := exec.Command(xmlsec, append(a, file)...).CombinedOutput()
		if err != nil {
			return &exec.ExitError{Stderr: out}
		}
		return nil
	}
	assertionSig := []string{"--node-xpath", "//*[local-name()='Assertion']/*[local-name()='Signature']"}
	cases := []struct {
		sp   string
		runs [][]string // each: xmlsec1 arguments that must verify
	}{
		{"resp", [][]string{{"--id-attr:ID", respID}}},
		{"atlassian", [][]string{{"--id-attr:ID", respID}}},
		{"asrt", [][]string{{"--id-attr:ID", asrtID}}},
		{"both", [][]string{{"--id-attr:ID", respID}, append([]string{"--id-attr:ID", asrtID}, assertionSig...)}},
	}
	for _, c := range cases {
		t.Run(c.sp, func(t *testing.T) {
			resp := build(t, e, c.sp, "_req1")
			good := writeFile(t, dir, c.sp+".xml", serialize(t, resp))
			for _, args := range c.runs {
				if err := verify(good, cert, args...); err != nil {
					t.Fatalf("xmlsec1 %v: %s", args, err.(*exec.ExitError).Stderr)
				}
				if err := verify(good, other, args...); err == nil {
					t.Fatalf("xmlsec1 accepted a signature with the wrong certificate")
				}
			}
			// Tamper: change the NameID.
			evil := resp.Copy()
			evil.FindElement(".//saml:NameID").SetText("mallory@id.example.org")
			bad := writeFile(t, dir, c.sp+"-bad.xml", serialize(t, evil))
			for _, args := range c.runs {
				if err := verify(bad, cert, args...); err == nil {
					t.Fatalf("xmlsec1 %v accepted a tampered response", args)
				}
			}
		})
	}
}

// The Atlassian profile: exactly NameID (virtual address, emailAddress) and
// the three claims; Destination and Recipient equal the ACS with its query.
func TestAtlassianShape(t *testing.T) {
	clock := &fakeClock{t: testNow}
	e := newEnv(t, clock, atlassianSP())
	resp := build(t, e, "atlassian", "_abc")
	if got := resp.SelectAttrValue("Destination", ""); got != atlassianACS {
		t.Errorf("Destination = %q", got)
	}
	if got := resp.SelectAttrValue("InResponseTo", ""); got != "_abc" {
		t.Errorf("InResponseTo = %q", got)
	}
	if err := validateWith(resp, idpKP.Cert); err != nil {
		t.Fatalf("response signature: %v", err)
	}
	a := resp.FindElement("./saml:Assertion")
	if a.FindElement("./ds:Signature") != nil {
		t.Error("sign: response must not sign the assertion")
	}
	nid := a.FindElement("./saml:Subject/saml:NameID")
	if nid.Text() != "alice@id.example.org" || nid.SelectAttrValue("Format", "") != NameIDFormatEmail {
		t.Errorf("NameID = %q %q", nid.Text(), nid.SelectAttrValue("Format", ""))
	}
	scd := a.FindElement("./saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData")
	if scd.SelectAttrValue("Recipient", "") != atlassianACS || scd.SelectAttrValue("InResponseTo", "") != "_abc" ||
		scd.SelectAttrValue("NotOnOrAfter", "") != samlTime(testNow.Add(5*time.Minute)) {
		t.Errorf("SubjectConfirmationData = %v", scd.Attr)
	}
	cond := a.FindElement("./saml:Conditions")
	if cond.SelectAttrValue("NotBefore", "") != samlTime(testNow.Add(-time.Minute)) ||
		cond.SelectAttrValue("NotOnOrAfter", "") != samlTime(testNow.Add(5*time.Minute)) ||
		cond.FindElement("./saml:AudienceRestriction/saml:Audience").Text() != atlassianEntity {
		t.Errorf("Conditions wrong")
	}
	as := a.FindElement("./saml:AuthnStatement")
	if as.SelectAttrValue("AuthnInstant", "") != samlTime(testNow.Add(-time.Minute)) ||
		as.SelectAttrValue("SessionIndex", "") == "" || strings.Contains(as.SelectAttrValue("SessionIndex", ""), "sess-1") ||
		as.SelectAttrValue("SessionNotOnOrAfter", "") != samlTime(testNow.Add(8*time.Hour)) {
		t.Errorf("AuthnStatement = %v", as.Attr)
	}
	got := map[string][]string{}
	for _, at := range a.FindElements("./saml:AttributeStatement/saml:Attribute") {
		for _, v := range at.FindElements("./saml:AttributeValue") {
			got[at.SelectAttrValue("Name", "")] = append(got[at.SelectAttrValue("Name", "")], v.Text())
		}
	}
	want := map[string][]string{claimGivenName: {"Alice"}, claimSurname: {"O'Brien & <Co>"}, claimName: {"acc-0001"}}
	if len(got) != len(want) {
		t.Errorf("attributes = %v, want exactly %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("attribute %s = %q, want %q", k, got[k], v)
		}
	}
}

// persistent NameIDs are pairwise: stable per SP, different across SPs,
// never the raw account id.
func TestPersistentNameIDIsPairwise(t *testing.T) {
	e := newEnv(t, &fakeClock{t: testNow}, genericSP("one", SignResponse), genericSP("two", SignResponse))
	nid := func(sp string) string {
		return build(t, e, sp, "").FindElement("./saml:Assertion/saml:Subject/saml:NameID").Text()
	}
	a1, a2, b := nid("one"), nid("one"), nid("two")
	if a1 != a2 || a1 == b || strings.Contains(a1, alice.ID) || len(a1) != 64 {
		t.Errorf("pairwise ids: %q %q %q", a1, a2, b)
	}
	resp := build(t, e, "one", "")
	if resp.SelectAttr("InResponseTo") != nil || resp.FindElement(".//saml:SubjectConfirmationData").SelectAttr("InResponseTo") != nil {
		t.Error("unsolicited response carries InResponseTo")
	}
	var groups []string
	for _, v := range resp.FindElements(".//saml:Attribute[@FriendlyName='isMemberOf']/saml:AttributeValue") {
		groups = append(groups, v.Text())
	}
	if !slices.Equal(groups, alice.Groups) {
		t.Errorf("groups = %v", groups)
	}
}

// WantAssertionsSigned in metadata wins over sign: response.
func TestWantAssertionsSignedWins(t *testing.T) {
	sp := genericSP("meta", SignResponse)
	sp.WantAssertionsSigned = true
	e := newEnv(t, &fakeClock{t: testNow}, sp)
	resp := build(t, e, "meta", "")
	a := resp.FindElement("./saml:Assertion")
	if err := validateWith(a, idpKP.Cert); err != nil {
		t.Errorf("assertion: %v", err)
	}
	if err := validateWith(resp, idpKP.Cert); err != nil {
		t.Errorf("response: %v", err)
	}
	// The Signature follows the Issuer, as the schema requires.
	if c := a.ChildElements(); c[0].Tag != "Issuer" || c[1].Tag != "Signature" {
		t.Errorf("assertion children start %s, %s", c[0].Tag, c[1].Tag)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, &fakeClock{t: testNow}, atlassianSP())
	next := newKeyPair("next")
	e.idp.keys = &staticKeys{active: idpKP, published: []*x509.Certificate{idpKP.Cert, next.Cert}}
	resp, err := newClient(t).Get(e.base + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	doc := etree.NewDocument()
	if _, err := doc.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	ed := doc.Root()
	if ed.SelectAttrValue("entityID", "") != e.base+"/saml/metadata" {
		t.Errorf("entityID %q", ed.SelectAttrValue("entityID", ""))
	}
	d := ed.FindElement("./md:IDPSSODescriptor")
	if d.SelectAttrValue("WantAuthnRequestsSigned", "") != "false" {
		t.Error("WantAuthnRequestsSigned")
	}
	if n := len(d.FindElements("./md:KeyDescriptor[@use='signing']")); n != 2 {
		t.Errorf("%d signing keys, want 2 (rollover)", n)
	}
	for _, svc := range []string{"SingleSignOnService", "SingleLogoutService"} {
		var bs []string
		for _, s := range d.FindElements("./md:" + svc) {
			bs = append(bs, s.SelectAttrValue("Binding", ""))
		}
		if !slices.Contains(bs, BindingRedirect) || !slices.Contains(bs, BindingPOST) {
			t.Errorf("%s bindings %v", svc, bs)
		}
	}
	if len(d.FindElements("./md:NameIDFormat")) != 3 {
		t.Error("NameIDFormats")
	}
}

// BenchmarkSignedResponse builds and signs a Response as for Atlassian
// (sign: response), for an already logged-in member.
func BenchmarkSignedResponse(b *testing.B) {
	e := newEnv(b, nil, atlassianSP())
	sp, _ := e.idp.sps.ByName("atlassian")
	s := testSession()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.idp.buildResponse(ctx, sp, atlassianACS, "_req", s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := encodeXML(res.Response); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSASign2048 is the raw RSA-2048 PKCS#1 v1.5 SHA-256 signature,
// the ceiling of BenchmarkSignedResponse.
func BenchmarkRSASign2048(b *testing.B) {
	testKeys()
	h := sha256.Sum256([]byte("x"))
	var k *rsa.PrivateKey = idpKP.Key
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:]); err != nil {
			b.Fatal(err)
		}
	}
}
