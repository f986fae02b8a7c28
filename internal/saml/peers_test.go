package saml

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

// followPost submits a SAML auto-POST page like a browser.
func followPost(t *testing.T, c *http.Client, body string) (*http.Response, string) {
	t.Helper()
	action, fields := parsePostPage(t, body)
	resp, err := c.PostForm(action, fields)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestMellon drives Apache + mod_auth_mellon: SP-initiated login with a
// signed AuthnRequest, IdP-initiated login through /saml/launch, single
// logout started at idbridge and at mellon.
func TestMellon(t *testing.T) {
	m := testlib.NewMellon(t)
	sp := m.URL
	meta, _ := os.ReadFile(m.Metadata)
	msp := ServiceProvider{Name: "mellon", NameID: NameIDVirtualAddress, Attributes: AttributesGeneric,
		Sign: SignResponse, DefaultRelayState: sp + "/secret/"}
	if err := ApplyMetadata(&msp, meta); err != nil {
		t.Fatal(err)
	}
	if !msp.AuthnRequestsSigned || len(msp.Certificates) != 1 || len(msp.SLO) != 1 {
		t.Fatalf("mellon metadata read as %+v", msp)
	}
	e := newEnv(t, nil, msp)
	resp, idpMeta := get(t, newClient(t), e.base+"/saml/metadata")
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	m.Start(t, []byte(idpMeta))

	checkSecret := func(t *testing.T, resp *http.Response) {
		t.Helper()
		if resp.StatusCode != 200 || resp.Request.URL.String() != sp+"/secret/" {
			t.Fatalf("ended on %d %s", resp.StatusCode, resp.Request.URL)
		}
		if got := resp.Header.Get("X-NameID"); got != alice.VirtualAddress {
			t.Errorf("MELLON_NAME_ID = %q, want %q", got, alice.VirtualAddress)
		}
		if got := resp.Header.Get("X-Mail"); got != alice.Email {
			t.Errorf("MELLON_mail = %q", got)
		}
	}
	browser := newClient(t)

	t.Run("SP-initiated", func(t *testing.T) {
		resp, body := get(t, browser, sp+"/secret/")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.String(), e.base+"/saml/sso") {
			t.Fatalf("at %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 500))
		}
		resp, _ = followPost(t, browser, body)
		checkSecret(t, resp)
	})

	t.Run("IdP-initiated logout", func(t *testing.T) {
		resp, body := get(t, browser, e.base+"/logout")
		if resp.StatusCode != 200 || body != "logged out" {
			t.Fatalf("logout ended on %d %s: %s", resp.StatusCode, resp.Request.URL, truncate(body, 300))
		}
		// mellon's session is gone: the secret page starts a login again.
		resp, _ = get(t, noFollow(browser), sp+"/secret/")
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, sp+"/mellon/login?") {
			t.Fatalf("after logout: %d %q", resp.StatusCode, loc)
		}
	})

	t.Run("IdP-initiated launch", func(t *testing.T) {
		b := newClient(t)
		resp, body := get(t, b, e.base+"/saml/launch/mellon") // logs in first
		if resp.StatusCode != 200 || e.sess.logins < 2 {
			t.Fatalf("launch: %d logins %d", resp.StatusCode, e.sess.logins)
		}
		resp, _ = followPost(t, b, body)
		checkSecret(t, resp)

		// SP-initiated logout: mellon's signed LogoutRequest ends the
		// idbridge session; our LogoutResponse brings the browser back.
		resp, _ = get(t, b, sp+"/mellon/logout?ReturnTo="+sp+"/bye.html")
		if resp.StatusCode != 200 || resp.Request.URL.String() != sp+"/bye.html" {
			t.Fatalf("mellon logout ended on %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp, _ = get(t, noFollow(b), e.base+"/saml/launch/mellon")
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login") {
			t.Errorf("idbridge session survived mellon's logout: %d %q", resp.StatusCode, loc)
		}
	})
}

// TestSimpleSAMLphp uses SimpleSAMLphp's default-sp as a second SP:
// SP-initiated login, ending on its attribute page.
func TestSimpleSAMLphp(t *testing.T) {
	sspSP := testlib.NewSimpleSAMLphp(t)
	sp := sspSP.URL
	ssp := ServiceProvider{
		Name: "ssp", EntityID: testlib.SimpleSAMLphpEntityID,
		ACS:    []Endpoint{{Index: 0, Binding: BindingPOST, Location: sspSP.ACS}},
		SLO:    []Endpoint{{Binding: BindingRedirect, Location: sspSP.SLO}},
		NameID: NameIDEmail, Attributes: AttributesGeneric, Sign: SignAssertion,
	}
	e := newEnv(t, nil, ssp)
	sspSP.Start(t, testlib.IdPInfo{EntityID: e.idp.EntityID(), SSO: e.base + "/saml/sso", SLO: e.base + "/saml/slo",
		Certs: []string{base64Std(idpKP.Cert.Raw)}})

	browser := newClient(t)
	resp, body := get(t, browser, sp+"/module.php/core/authenticate.php?as=default-sp")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.String(), e.base+"/saml/sso") {
		t.Fatalf("at %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 1500))
	}
	resp, body = followPost(t, browser, body)
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.Path, "/module.php/core/authenticate.php") {
		t.Fatalf("ended on %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 3000))
	}
	for _, want := range []string{alice.Email, "urn:oid:0.9.2342.19200300.100.1.1", ">alice<", "devs", "admins", "O&#039;Brien &amp; &lt;Co&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("attribute page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", truncate(body, 6000))
	}
}

// TestLassoAtlassian plays an Atlassian-shaped SP with Lasso: its
// AuthnRequest (ACS with a query string) is answered, and Lasso accepts the
// Response with exactly the NameID and the three claims Atlassian reads.
func TestLassoAtlassian(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import lasso").Run(); err != nil {
		testlib.Need(t, "python3-lasso")
	}
	e := newEnv(t, nil, atlassianSP())
	d := t.TempDir()
	writeFile(t, d, "sp.key", keyPEM(spKP.Key))
	writeFile(t, d, "sp.crt", certPEM(spKP.Cert))
	writeFile(t, d, "sp.xml", []byte(`<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="`+nsMD+`" entityID="`+atlassianEntity+`">
  <md:SPSSODescriptor protocolSupportEnumeration="`+nsSAMLP+`" AuthnRequestsSigned="false" WantAssertionsSigned="false">
    <md:AssertionConsumerService index="0" isDefault="true" Binding="`+BindingPOST+`" Location="`+xmlEsc(atlassianACS)+`"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>`))
	_, meta := get(t, newClient(t), e.base+"/saml/metadata")
	writeFile(t, d, "idp.xml", []byte(meta))
	lasso := func(args ...string) string {
		out, err := exec.Command(py, append([]string{"testdata/lasso_sp.py"}, args...)...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("lasso %s: %v\n%s", args[0], err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	reqURL := lasso("request", d)
	if !strings.HasPrefix(reqURL, e.base+"/saml/sso?") {
		t.Fatalf("lasso request URL %q", reqURL)
	}
	browser := newClient(t)
	resp, body := get(t, browser, reqURL)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	action, fields := parsePostPage(t, body)
	if action != atlassianACS {
		t.Errorf("form action %q", action)
	}
	// A tampered response is refused by Lasso (its signature check works).
	raw, _ := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse"))
	evil := base64Std([]byte(strings.Replace(string(raw), alice.VirtualAddress, "mallory@id.example.org", 1)))
	if out, err := exec.Command(py, "testdata/lasso_sp.py", "response", d, evil).CombinedOutput(); err == nil {
		t.Fatalf("lasso accepted a tampered response: %s", out)
	}
	var got struct {
		NameID       string              `json:"name_id"`
		Format       string              `json:"format"`
		Attributes   map[string][]string `json:"attributes"`
		Destination  string              `json:"destination"`
		InResponseTo string              `json:"in_response_to"`
		RequestID    string              `json:"request_id"`
		Audience     string              `json:"audience"`
	}
	if err := json.Unmarshal([]byte(lasso("response", d, fields.Get("SAMLResponse"))), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{claimGivenName: {"Alice"}, claimSurname: {"O'Brien & <Co>"}, claimName: {"acc-0001"}}
	if got.NameID != alice.VirtualAddress || got.Format != NameIDFormatEmail || !reflect.DeepEqual(got.Attributes, want) ||
		got.Destination != atlassianACS || got.Audience != atlassianEntity || got.InResponseTo == "" || got.InResponseTo != got.RequestID {
		t.Errorf("lasso read %+v", got)
	}
}
