package saml

import (
	"html"
	"strings"
	"testing"
)

// TestSimpleSAMLphp uses SimpleSAMLphp's default-sp, configured from
// idbridge's /saml/metadata, as a second SP: SP-initiated login ends on its
// attribute page, which shows the generic attribute set.
func TestSimpleSAMLphp(t *testing.T) {
	t.Parallel()
	s := newSSP(t)
	in := startIDB(t, s.spConf())
	s.start(t, in)
	u := in.addUser(t, "sspuser", false)

	browser := newClient()
	resp, body := get(t, browser, s.URL+"/module.php/core/authenticate.php?as=default-sp")
	if !strings.HasPrefix(resp.Request.URL.String(), in.URL+"/login?") {
		t.Fatalf("SimpleSAMLphp did not send the browser to idbridge's login: %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 1500))
	}
	resp, body = submitLogin(t, in, browser, resp, body, u.Name, password)
	p := mustPostPage(t, resp, body)
	if want := s.spConf().ACSURL; p.Action != want {
		t.Errorf("form action %q, want %q", p.Action, want)
	}
	resp, body = p.submit(t, browser)
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.Path, "/module.php/core/authenticate.php") {
		t.Fatalf("ended on %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 3000))
	}
	// The generic set: mail, givenName, sn, displayName, uid, isMemberOf
	// (no groups here); the NameID is the real email (name_id: email).
	esc := html.EscapeString
	for _, want := range []string{
		"urn:oid:0.9.2342.19200300.100.1.3", esc(u.Email),
		"urn:oid:2.5.4.42", esc(u.First),
		"urn:oid:2.5.4.4", esc(u.Last),
		"urn:oid:2.16.840.1.113730.3.1.241", esc(u.First + " " + u.Last),
		"urn:oid:0.9.2342.19200300.100.1.1", ">" + u.Name + "<",
	} {
		if !strings.Contains(body, want) && !strings.Contains(body, strings.ReplaceAll(want, "&#39;", "&#039;")) {
			t.Errorf("attribute page lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", truncate(body, 6000))
	}
}
