package saml

import (
	"fmt"
	"os"
	"os/exec"
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

const sspEntity = "https://ssp.test/sp"

type ssp struct {
	URL  string
	addr string
	dir  string
	php  string
}

func newSSP(t *testing.T) *ssp {
	t.Helper()
	php := testlib.Need(t, "php")
	if _, err := os.Stat("/usr/share/simplesamlphp/www"); err != nil {
		testlib.Need(t, "simplesamlphp")
	}
	s := &ssp{dir: peerDir(t, "ssp"), addr: testlib.FreePort(t), php: php}
	s.URL = "http://" + s.addr
	return s
}

func (s *ssp) spConf() spConf {
	return spConf{Name: "ssp", EntityID: sspEntity,
		ACSURL: s.URL + "/module.php/saml/sp/saml2-acs.php/default-sp",
		SLOURL: s.URL + "/module.php/saml/sp/saml2-logout.php/default-sp",
		NameID: "email", Attributes: "generic", Sign: "assertion"}
}

// start configures SimpleSAMLphp's default-sp from idbridge's /saml/metadata
// (entity id, SSO and SLO endpoints, certificate) and runs it under php -S.
func (s *ssp) start(t *testing.T, in *idb) {
	t.Helper()
	meta, _ := metadata(t, in)
	root := parseXML(t, []byte(meta))
	entity := root.SelectAttrValue("entityID", "")
	loc := func(tag string) string {
		for _, el := range root.FindElements("//IDPSSODescriptor/" + tag) {
			if el.SelectAttrValue("Binding", "") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" {
				return el.SelectAttrValue("Location", "")
			}
		}
		t.Fatalf("metadata has no HTTP-Redirect %s:\n%s", tag, meta)
		return ""
	}
	var certs []string
	for _, el := range root.FindElements("//IDPSSODescriptor/KeyDescriptor") {
		if use := el.SelectAttrValue("use", "signing"); use != "signing" {
			continue
		}
		if c := el.FindElement(".//X509Certificate"); c != nil {
			certs = append(certs, strings.Join(strings.Fields(c.Text()), ""))
		}
	}
	if len(certs) == 0 {
		t.Fatalf("metadata has no signing certificate:\n%s", meta)
	}
	for _, d := range []string{"config", "metadata", "log", "data", "tmp"} {
		os.MkdirAll(filepath.Join(s.dir, d), 0o755)
	}
	cfg, err := os.ReadFile("/etc/simplesamlphp/config.php")
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, fmt.Sprintf(`
$config['baseurlpath'] = '%[1]s/';
$config['loggingdir'] = '%[2]s/log/';
$config['datadir'] = '%[2]s/data/';
$config['tempdir'] = '%[2]s/tmp';
$config['metadatadir'] = '%[2]s/metadata/';
$config['metadata.sources'] = [['type' => 'flatfile', 'directory' => '%[2]s/metadata/']];
$config['secretsalt'] = 'idbridge-test-salt';
$config['logging.handler'] = 'file';
$config['logging.level'] = SimpleSAML\Logger::DEBUG;
$config['session.cookie.secure'] = false;
$config['store.type'] = 'phpsession';
`, s.URL, s.dir)...)
	writeFile(t, s.dir, "config/config.php", cfg, 0o644)
	auth, err := os.ReadFile("/etc/simplesamlphp/authsources.php")
	if err != nil {
		t.Fatal(err)
	}
	auth = append(auth, fmt.Sprintf(`
$config['default-sp']['entityID'] = '%s';
$config['default-sp']['idp'] = '%s';
`, sspEntity, entity)...)
	writeFile(t, s.dir, "config/authsources.php", auth, 0o644)
	var keys strings.Builder
	for _, c := range certs {
		fmt.Fprintf(&keys, "    ['encryption' => false, 'signing' => true, 'type' => 'X509Certificate', 'X509Certificate' => '%s'],\n", c)
	}
	writeFile(t, s.dir, "metadata/saml20-idp-remote.php", []byte(fmt.Sprintf(`<?php
$metadata['%[1]s'] = [
  'entityid' => '%[1]s',
  'SingleSignOnService' => [['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', 'Location' => '%[2]s']],
  'SingleLogoutService' => [['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', 'Location' => '%[3]s']],
  'keys' => [
%[4]s  ],
];
`, entity, loc("SingleSignOnService"), loc("SingleLogoutService"), keys.String())), 0o644)
	cmd := exec.Command(s.php, "-S", s.addr, "-t", "/usr/share/simplesamlphp/www")
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+filepath.Join(s.dir, "config"))
	testlib.StartDaemon(t, cmd, s.addr, filepath.Join(s.dir, "log", "simplesamlphp.log"))
}
