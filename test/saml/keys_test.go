package saml

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

var addedKeyRE = regexp.MustCompile(`(?m)^added key (\S+)`)

// TestKeyRollover swaps the signing key through the CLI while serve runs:
// `keys add` publishes a second certificate, `keys activate NEW` makes
// responses verify with it, `keys retire OLD` leaves one certificate. The
// server caches keys for up to 10 s, so each step is polled with a deadline.
func TestKeyRollover(t *testing.T) {
	t.Parallel()
	xmlsec := testlib.Need(t, "xmlsec1")
	atl := atlassianSPs[0]
	in := startIDB(t, atl)
	u := in.addUser(t, "rollover", false)
	browser := newClient()
	login(t, in, browser, u.Name)

	// signedWith reports whether a fresh response verifies with cert.
	signedWith := func(cert []byte) error {
		resp, body := get(t, browser, in.URL+"/saml/launch/"+atl.Name)
		p := mustPostPage(t, resp, body)
		return xmlsecVerify(t, xmlsec, p.responseXML(t), cert, idAttrResponse, xpathResponseSig)
	}
	// eventually polls cond for up to 20 s.
	eventually := func(what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := cond()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s: %v", what, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	certsNow := func() [][]byte { _, c := metadata(t, in); return c }

	old := certsNow()
	if len(old) != 1 {
		t.Fatalf("metadata publishes %d certificates before the rollover, want 1", len(old))
	}
	oldCert := old[0]
	if err := signedWith(oldCert); err != nil {
		t.Fatalf("response does not verify with the published certificate: %v", err)
	}
	oldID := activeKey(t, in)

	m := addedKeyRE.FindStringSubmatch(in.cli(t, "", "keys", "add"))
	if m == nil {
		t.Fatal("keys add did not print `added key ID`")
	}
	newID := m[1]
	var newCert []byte
	eventually("metadata lists two certificates after keys add", func() error {
		c := certsNow()
		if len(c) != 2 {
			return fmt.Errorf("%d certificates", len(c))
		}
		for _, x := range c {
			if !bytes.Equal(x, oldCert) {
				newCert = x
			}
		}
		if newCert == nil {
			return fmt.Errorf("the old certificate is gone")
		}
		return nil
	})
	if err := signedWith(oldCert); err != nil {
		t.Errorf("after keys add (before activate) responses no longer verify with the old certificate: %v", err)
	}

	in.cli(t, "", "keys", "activate", newID)
	eventually("responses verify with the new certificate after keys activate", func() error {
		return signedWith(newCert)
	})
	if err := signedWith(oldCert); err == nil {
		t.Errorf("after keys activate a response still verifies with the old certificate")
	}
	if c := certsNow(); len(c) != 2 {
		t.Errorf("metadata lists %d certificates between activate and retire, want 2", len(c))
	}

	in.cli(t, "", "keys", "retire", oldID)
	eventually("metadata lists only the new certificate after keys retire", func() error {
		c := certsNow()
		if len(c) != 1 || !bytes.Equal(c[0], newCert) {
			return fmt.Errorf("%d certificates", len(c))
		}
		return nil
	})
	if err := signedWith(newCert); err != nil {
		t.Errorf("after keys retire: %v", err)
	}
}

// activeKey returns the id of the active SAML key from `keys list`.
func activeKey(t *testing.T, in *idb) string {
	t.Helper()
	out := in.cli(t, "", "keys", "list")
	var ids []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "saml" && f[2] == "active" {
			ids = append(ids, f[0])
		}
	}
	if len(ids) != 1 {
		t.Fatalf("keys list shows %d active saml keys:\n%s", len(ids), out)
	}
	return ids[0]
}
