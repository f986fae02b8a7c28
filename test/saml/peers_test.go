package saml

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/testlib"
)

// peerDir is a temp dir that Apache's www-data user can read.
func peerDir(t *testing.T, pattern string) string {
	t.Helper()
	return testlib.PublicDir(t, pattern, 0o755)
}

func writeFile(t *testing.T, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

// --- Apache + mod_auth_mellon ---------------------------------------------

// mellon is a private Apache with mod_auth_mellon (testlib.Mellon): /secret/
// is a CGI behind `AuthType Mellon` that prints MELLON_NAME_ID and
// MELLON_mail.
type mellon struct {
	*testlib.Mellon
}

// newMellon makes the SP's key, certificate and metadata; start runs Apache
// once idbridge (whose metadata it needs) is up.
func newMellon(t *testing.T) *mellon {
	t.Helper()
	return &mellon{testlib.NewMellon(t)}
}

func (m *mellon) spConf() spConf {
	return spConf{Name: "mellon", MetadataFile: m.Metadata, NameID: "virtual_address",
		Attributes: "generic", Sign: "response", DefaultRelayState: m.URL + "/secret/"}
}

func (m *mellon) start(t *testing.T, in *idb) {
	t.Helper()
	meta, _ := metadata(t, in)
	m.Start(t, []byte(meta))
}

// --- SimpleSAMLphp ----------------------------------------------------------

// ssp is testlib's SimpleSAMLphp, configured from idbridge's /saml/metadata.
type ssp struct{ *testlib.SimpleSAMLphp }

func newSSP(t *testing.T) *ssp { return &ssp{testlib.NewSimpleSAMLphp(t)} }

func (s *ssp) spConf() spConf {
	return spConf{Name: "ssp", EntityID: testlib.SimpleSAMLphpEntityID, ACSURL: s.ACS, SLOURL: s.SLO,
		NameID: "email", Attributes: "generic", Sign: "assertion"}
}

// start configures SimpleSAMLphp's default-sp from idbridge's /saml/metadata
// (entity id, SSO and SLO endpoints, certificates) and runs it.
func (s *ssp) start(t *testing.T, in *idb) {
	t.Helper()
	meta, _ := metadata(t, in)
	root := parseXML(t, []byte(meta))
	loc := func(tag string) string {
		for _, el := range root.FindElements("//IDPSSODescriptor/" + tag) {
			if el.SelectAttrValue("Binding", "") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" {
				return el.SelectAttrValue("Location", "")
			}
		}
		t.Fatalf("metadata has no HTTP-Redirect %s:\n%s", tag, meta)
		return ""
	}
	info := testlib.IdPInfo{EntityID: root.SelectAttrValue("entityID", ""), SSO: loc("SingleSignOnService"), SLO: loc("SingleLogoutService")}
	for _, el := range root.FindElements("//IDPSSODescriptor/KeyDescriptor") {
		if use := el.SelectAttrValue("use", "signing"); use != "signing" {
			continue
		}
		if c := el.FindElement(".//X509Certificate"); c != nil {
			info.Certs = append(info.Certs, strings.Join(strings.Fields(c.Text()), ""))
		}
	}
	if len(info.Certs) == 0 {
		t.Fatalf("metadata has no signing certificate:\n%s", meta)
	}
	s.Start(t, info)
}
