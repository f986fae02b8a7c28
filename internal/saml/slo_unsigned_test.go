package saml

import (
	"testing"
	"time"
)

// An SP without a certificate sends unsigned LogoutRequests. Its NameID for
// the member is no secret (a virtual address), so such a request ends the
// session only when it also carries the SessionIndex that SP was given;
// otherwise any site could log the member out by sending the browser to
// /saml/slo.
func TestUnsignedLogoutNeedsSessionIndex(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	other := genericSP("other", SignResponse)
	other.SLO = []Endpoint{{Binding: BindingRedirect, Location: "https://other.test/slo"}}
	e := newEnv(t, clock, other)
	browser := newClient(t)
	get(t, browser, e.base+"/login?continue=/bye")
	if resp, _ := get(t, browser, e.base+"/saml/launch/other"); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	var sid string
	for id := range e.sess.sessions {
		sid = id
	}
	part := e.sess.parts[sid][0]
	lr := func(id, sessionIndex string) string {
		si := ""
		if sessionIndex != "" {
			si = `<samlp:SessionIndex>` + sessionIndex + `</samlp:SessionIndex>`
		}
		return `<samlp:LogoutRequest xmlns:samlp="` + nsSAMLP + `" xmlns:saml="` + nsSAML + `" ID="` + id + `" Version="2.0" IssueInstant="` + samlTime(clock.Now()) + `" Destination="` + e.base + `/saml/slo"><saml:Issuer>https://other.test/sp</saml:Issuer><saml:NameID>` + part.NameID + `</saml:NameID>` + si + `</samlp:LogoutRequest>`
	}
	get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr("_forged", ""), "", nil))
	if len(e.sess.sessions) != 1 {
		t.Fatal("an unsigned LogoutRequest without SessionIndex ended the session")
	}
	get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr("_guess", "not-the-index"), "", nil))
	if len(e.sess.sessions) != 1 {
		t.Fatal("an unsigned LogoutRequest with a wrong SessionIndex ended the session")
	}
	get(t, noFollow(browser), e.base+"/saml/slo?"+redirectQuery("SAMLRequest", lr("_real", part.SessionIndex), "", nil))
	if len(e.sess.sessions) != 0 {
		t.Fatal("the SP's own LogoutRequest, with its SessionIndex, did not end the session")
	}
}
