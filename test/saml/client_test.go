package saml

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// SAML names used by the tests.
const (
	nsSAMLP           = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsSAML            = "urn:oasis:names:tc:SAML:2.0:assertion"
	bindingPOST       = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	nameIDFormatEmail = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
	sigAlgRSASHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	claimGivenName    = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	claimSurname      = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	claimName         = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
)

// newClient is a scripted browser: a cookie jar, redirects followed.
func newClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

// noFollow is c without following redirects (same cookie jar).
func noFollow(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

func readBody(t *testing.T, resp *http.Response, err error) (*http.Response, string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	return readBody(t, resp, err)
}

func postForm(t *testing.T, c *http.Client, u string, v url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, v)
	return readBody(t, resp, err)
}

var (
	csrfRE     = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]*)">`)
	continueRE = regexp.MustCompile(`<input type="hidden" name="continue" value="([^"]*)">`)
	samlFormRE = regexp.MustCompile(`<form id="saml" method="post" action="([^"]*)"`)
	inputRE    = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// isLoginPage reports whether resp is idbridge's login form (422: the form
// again, after a refused login).
func isLoginPage(in *idb, resp *http.Response, body string) bool {
	return (resp.StatusCode == 200 || resp.StatusCode == http.StatusUnprocessableEntity) && strings.HasPrefix(resp.Request.URL.String(), in.URL+"/login") &&
		strings.Contains(body, `action="/login"`) && strings.Contains(body, `name="password"`)
}

// submitLogin fills idbridge's login page (resp, body) with name and pw
// and follows where it leads.
func submitLogin(t *testing.T, in *idb, c *http.Client, resp *http.Response, body, name, pw string) (*http.Response, string) {
	t.Helper()
	if !isLoginPage(in, resp, body) {
		t.Fatalf("expected the login page, at %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 1500))
	}
	csrf := csrfRE.FindStringSubmatch(body)
	cont := continueRE.FindStringSubmatch(body)
	if csrf == nil || cont == nil {
		t.Fatalf("login form without csrf or continue:\n%s", truncate(body, 2000))
	}
	return postForm(t, c, in.URL+"/login", url.Values{
		"csrf": {html.UnescapeString(csrf[1])}, "continue": {html.UnescapeString(cont[1])},
		"login": {name}, "password": {pw},
	})
}

// login logs c in as name on a fresh login page.
func login(t *testing.T, in *idb, c *http.Client, name string) {
	t.Helper()
	resp, body := get(t, c, in.URL+"/login")
	resp, body = submitLogin(t, in, c, resp, body, name, password)
	if resp.StatusCode != 200 || isLoginPage(in, resp, body) {
		t.Fatalf("login as %s ended on %d %s:\n%s", name, resp.StatusCode, resp.Request.URL, truncate(body, 1500))
	}
}

// logout posts idbridge's logout form (with its CSRF token) and follows the
// redirect chain (front-channel single logout).
func logout(t *testing.T, in *idb, c *http.Client) (*http.Response, string) {
	t.Helper()
	resp, body := get(t, c, in.URL+"/logout")
	csrf := csrfRE.FindStringSubmatch(body)
	if resp.StatusCode != 200 || csrf == nil {
		t.Fatalf("GET /logout: %d without a form:\n%s", resp.StatusCode, truncate(body, 1500))
	}
	return postForm(t, c, in.URL+"/logout", url.Values{"csrf": {html.UnescapeString(csrf[1])}})
}

// postPage is idbridge's HTTP-POST binding page.
type postPage struct {
	Action string
	Fields url.Values
}

// parsePostPage reads the auto-submit form; ok is false when there is none.
func parsePostPage(body string) (postPage, bool) {
	m := samlFormRE.FindStringSubmatch(body)
	if m == nil {
		return postPage{}, false
	}
	p := postPage{Action: html.UnescapeString(m[1]), Fields: url.Values{}}
	for _, f := range inputRE.FindAllStringSubmatch(body, -1) {
		p.Fields.Set(html.UnescapeString(f[1]), html.UnescapeString(f[2]))
	}
	return p, true
}

func mustPostPage(t *testing.T, resp *http.Response, body string) postPage {
	t.Helper()
	p, ok := parsePostPage(body)
	if !ok || resp.StatusCode != 200 || p.Fields.Get("SAMLResponse") == "" {
		t.Fatalf("no SAMLResponse form at %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 2000))
	}
	return p
}

// submit posts the page's form like a browser.
func (p postPage) submit(t *testing.T, c *http.Client) (*http.Response, string) {
	t.Helper()
	return postForm(t, c, p.Action, p.Fields)
}

// responseXML is the decoded SAMLResponse.
func (p postPage) responseXML(t *testing.T) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(p.Fields.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func parseXML(t *testing.T, raw []byte) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatalf("%v:\n%s", err, raw)
	}
	return doc.Root()
}

// noAssertion fails when a refused request was answered with a SAML response.
func noAssertion(t *testing.T, what string, resp *http.Response, body string) {
	t.Helper()
	if _, ok := parsePostPage(body); ok || strings.Contains(body, "SAMLResponse") {
		t.Errorf("%s: the answer (%d %s) carries a SAML response:\n%s", what, resp.StatusCode, resp.Request.URL, truncate(body, 1000))
	}
}

// --- requests as a service provider builds them ----------------------------

type authnReq struct {
	Issuer, ID, Destination, ACSURL string
	Raw                             string // replaces the whole XML
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("_%x", b)
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func xmlEsc(s string) string { return xmlEscaper.Replace(s) }

func (o *authnReq) xml() string {
	if o.Raw != "" {
		return o.Raw
	}
	if o.ID == "" {
		o.ID = newID()
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<samlp:AuthnRequest xmlns:samlp="%s" xmlns:saml="%s" ID="%s" Version="2.0" IssueInstant="%s"`,
		nsSAMLP, nsSAML, o.ID, time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	if o.Destination != "" {
		fmt.Fprintf(&b, ` Destination="%s"`, xmlEsc(o.Destination))
	}
	if o.ACSURL != "" {
		fmt.Fprintf(&b, ` AssertionConsumerServiceURL="%s" ProtocolBinding="%s"`, xmlEsc(o.ACSURL), bindingPOST)
	}
	fmt.Fprintf(&b, `><saml:Issuer>%s</saml:Issuer><samlp:NameIDPolicy Format="%s" AllowCreate="true"/></samlp:AuthnRequest>`,
		xmlEsc(o.Issuer), nameIDFormatEmail)
	return b.String()
}

func deflateB64(s string) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	fw.Write([]byte(s))
	fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// redirectURL is the HTTP-Redirect binding URL of xml at idbridge's SSO
// endpoint, signed with key when not nil (bindings 3.4.4.1).
func redirectURL(in *idb, xml, relayState string, key *rsa.PrivateKey) string {
	q := "SAMLRequest=" + url.QueryEscape(deflateB64(xml))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if key != nil {
		q += "&SigAlg=" + url.QueryEscape(sigAlgRSASHA256)
		h := sha256.Sum256([]byte(q))
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		if err != nil {
			panic(err)
		}
		q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	return in.URL + "/saml/sso?" + q
}

// fixture is the path of a file under testdata (made by testdata/gen.sh).
func fixture(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func loadKey(t *testing.T, name string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k.(*rsa.PrivateKey)
}

// --- metadata and signatures ----------------------------------------------

// metadata fetches /saml/metadata and returns it with the certificates it
// publishes (signing use), as PEM.
func metadata(t *testing.T, in *idb) (string, [][]byte) {
	t.Helper()
	resp, body := get(t, newClient(), in.URL+"/saml/metadata")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /saml/metadata: %d\n%s", resp.StatusCode, body)
	}
	root := parseXML(t, []byte(body))
	if got, want := root.SelectAttrValue("entityID", ""), in.URL+"/saml/metadata"; got != want {
		t.Errorf("metadata entityID %q, want %q", got, want)
	}
	var certs [][]byte
	seen := map[string]bool{}
	for _, el := range root.FindElements("//X509Certificate") {
		txt := strings.Join(strings.Fields(el.Text()), "")
		if seen[txt] {
			continue
		}
		seen[txt] = true
		der, err := base64.StdEncoding.DecodeString(txt)
		if err != nil {
			t.Fatalf("metadata certificate: %v", err)
		}
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	if len(certs) == 0 {
		t.Fatalf("metadata publishes no certificate:\n%s", body)
	}
	return body, certs
}

const (
	xpathResponseSig  = "/*[local-name()='Response']/*[local-name()='Signature']"
	xpathAssertionSig = "/*[local-name()='Response']/*[local-name()='Assertion']/*[local-name()='Signature']"
	idAttrResponse    = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
	idAttrAssertion   = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
)

// xmlsecVerify runs `xmlsec1 --verify --trusted-pem CERT` on the signature
// that xpath selects in doc.
func xmlsecVerify(t *testing.T, xmlsec string, doc, certPEM []byte, idAttr, xpath string) error {
	t.Helper()
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	file := filepath.Join(dir, "resp.xml")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmlsec, "--verify", "--trusted-pem", cert, "--id-attr:ID", idAttr,
		"--node-xpath", xpath, file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, truncate(string(out), 1500))
	}
	return nil
}
