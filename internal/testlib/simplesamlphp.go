package testlib

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// SimpleSAMLphpEntityID is the entity id of the SP that NewSimpleSAMLphp makes.
const SimpleSAMLphpEntityID = "https://ssp.test/sp"

// simpleSAMLphpWWW is where Debian's simplesamlphp package keeps its pages.
const simpleSAMLphpWWW = "/usr/share/simplesamlphp/www"

// SimpleSAMLphp is SimpleSAMLphp's default-sp run under `php -S` on a free
// port, with its configuration in a temporary folder (PEERS.md recipe).
// /module.php/core/authenticate.php?as=default-sp starts a login and ends on
// the attribute page.
type SimpleSAMLphp struct {
	URL  string // http://127.0.0.1:PORT
	ACS  string // its AssertionConsumerService (HTTP-POST)
	SLO  string // its SingleLogoutService (HTTP-Redirect)
	addr string
	dir  string
	php  string
}

// IdPInfo is what SimpleSAMLphp needs to know of the IdP.
type IdPInfo struct {
	EntityID, SSO, SLO string   // SSO and SLO: HTTP-Redirect locations
	Certs              []string // base64 DER signing certificates
}

// NewSimpleSAMLphp picks the port and folder; it skips the test when php or
// simplesamlphp is absent (fails under CI, as Need).
func NewSimpleSAMLphp(t testing.TB) *SimpleSAMLphp {
	t.Helper()
	php := Need(t, "php")
	if _, err := os.Stat(simpleSAMLphpWWW); err != nil {
		Need(t, "simplesamlphp")
	}
	s := &SimpleSAMLphp{addr: FreePort(t), dir: PublicDir(t, "ssp", 0o755), php: php}
	s.URL = "http://" + s.addr
	s.ACS = s.URL + "/module.php/saml/sp/saml2-acs.php/default-sp"
	s.SLO = s.URL + "/module.php/saml/sp/saml2-logout.php/default-sp"
	return s
}

// Start writes the configuration for idp and runs php -S until the test ends.
func (s *SimpleSAMLphp) Start(t TB, idp IdPInfo) {
	t.Helper()
	for _, d := range []string{"config", "metadata", "log", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	cfg, err := os.ReadFile("/etc/simplesamlphp/config.php")
	if err != nil {
		t.Fatalf("%v", err)
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
		t.Fatalf("%v", err)
	}
	auth = append(auth, fmt.Sprintf(`
$config['default-sp']['entityID'] = '%s';
$config['default-sp']['idp'] = '%s';
`, SimpleSAMLphpEntityID, idp.EntityID)...)
	writeFile(t, s.dir, "config/authsources.php", auth, 0o644)
	var keys strings.Builder
	for _, c := range idp.Certs {
		fmt.Fprintf(&keys, "    ['encryption' => false, 'signing' => true, 'type' => 'X509Certificate', 'X509Certificate' => '%s'],\n", c)
	}
	const redirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	writeFile(t, s.dir, "metadata/saml20-idp-remote.php", []byte(fmt.Sprintf(`<?php
$metadata['%[1]s'] = [
  'entityid' => '%[1]s',
  'SingleSignOnService' => [['Binding' => '%[5]s', 'Location' => '%[2]s']],
  'SingleLogoutService' => [['Binding' => '%[5]s', 'Location' => '%[3]s']],
  'keys' => [
%[4]s  ],
];
`, idp.EntityID, idp.SSO, idp.SLO, keys.String(), redirect)), 0o644)
	cmd := exec.Command(s.php, "-S", s.addr, "-t", simpleSAMLphpWWW)
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+filepath.Join(s.dir, "config"))
	StartDaemon(t, cmd, s.addr, filepath.Join(s.dir, "log", "simplesamlphp.log"))
}
