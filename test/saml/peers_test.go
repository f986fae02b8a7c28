package saml

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/testlib"
)

// peerDir is a temp dir that Apache's www-data user can read.
func peerDir(t *testing.T, pattern string) string {
	t.Helper()
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
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

// startDaemon runs cmd in its own process group until the test ends,
// stopping it by its PID, and waits until addr accepts connections.
func startDaemon(t *testing.T, cmd *exec.Cmd, addr, logFile string) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() && logFile != "" {
			b, _ := os.ReadFile(logFile)
			t.Logf("%s:\n%s", logFile, tail(string(b), 6000))
		}
	})
	for i := 0; ; i++ {
		select {
		case err := <-done:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("%s exited: %v\n%s", cmd.Path, err, b)
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if i > 300 {
			t.Fatalf("%s does not listen on %s", cmd.Path, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- Apache + mod_auth_mellon ---------------------------------------------

const mellonEntity = "https://sp.test/mellon/metadata"

// mellon is a private Apache with mod_auth_mellon: /secret/ is a CGI behind
// `AuthType Mellon` that prints MELLON_NAME_ID and MELLON_mail.
//
// MELLON_DISABLE_SAMESITE: mellon marks the cookie it sets before sending
// the browser to the IdP SameSite=None, whatever MellonCookieSameSite says,
// and Chromium drops a SameSite=None cookie without Secure (which needs
// https). Without the attribute Chromium treats it as Lax, and every port
// of 127.0.0.1 is one site, so nothing is lost here; in production mellon
// runs on https with SameSite=None; Secure.
type mellon struct {
	URL      string // http://127.0.0.1:PORT
	addr     string
	dir      string
	base     string // path of the SP files without extension
	Metadata string // the SP metadata file, for idbridge's metadata_file
	apache   string
}

// newMellon makes the SP's key, certificate and metadata; start runs Apache
// once idbridge (whose metadata it needs) is up.
func newMellon(t *testing.T) *mellon {
	t.Helper()
	apache := testlib.Need(t, "apache2")
	mkmeta := testlib.Need(t, "mellon_create_metadata")
	if _, err := os.Stat("/usr/lib/apache2/modules/mod_auth_mellon.so"); err != nil {
		testlib.Need(t, "mod_auth_mellon.so") // skips, or fails under CI
	}
	m := &mellon{dir: peerDir(t, "idb-mellon-"), addr: testlib.FreePort(t), apache: apache}
	m.URL = "http://" + m.addr
	cmd := exec.Command(mkmeta, mellonEntity, m.URL+"/mellon")
	cmd.Dir = m.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mellon_create_metadata: %v\n%s", err, out)
	}
	m.base = filepath.Join(m.dir, "https_sp.test_mellon_metadata")
	for _, ext := range []string{".key", ".cert", ".xml"} {
		os.Chmod(m.base+ext, 0o644)
	}
	m.Metadata = m.base + ".xml"
	return m
}

func (m *mellon) spConf() spConf {
	return spConf{Name: "mellon", MetadataFile: m.Metadata, NameID: "virtual_address",
		Attributes: "generic", Sign: "response", DefaultRelayState: m.URL + "/secret/"}
}

func (m *mellon) start(t *testing.T, in *idb) {
	t.Helper()
	meta, _ := metadata(t, in)
	writeFile(t, m.dir, "idp.xml", []byte(meta), 0o644)
	writeFile(t, m.dir, "cgi/secret.cgi", []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"+
		"printf 'MELLON_NAME_ID=%s\\n' \"$MELLON_NAME_ID\"\nprintf 'MELLON_mail=%s\\n' \"$MELLON_mail\"\n"), 0o755)
	os.Chmod(filepath.Join(m.dir, "cgi"), 0o755)
	writeFile(t, m.dir, "htdocs/bye.html", []byte("bye\n"), 0o644)
	runAs := ""
	if os.Geteuid() == 0 {
		runAs = "User www-data\nGroup www-data\n"
	}
	conf := fmt.Sprintf(`ServerRoot /etc/apache2
ServerName 127.0.0.1
Listen %[1]s
PidFile %[2]s/httpd.pid
DefaultRuntimeDir %[2]s
Mutex file:%[2]s
ErrorLog %[2]s/error.log
LogLevel info
%[3]s
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule authn_core_module /usr/lib/apache2/modules/mod_authn_core.so
LoadModule authz_user_module /usr/lib/apache2/modules/mod_authz_user.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
LoadModule cgid_module /usr/lib/apache2/modules/mod_cgid.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
LoadModule auth_mellon_module /usr/lib/apache2/modules/mod_auth_mellon.so
TypesConfig /etc/mime.types
DocumentRoot %[2]s/htdocs
ScriptSock %[2]s/cgid.sock
SetEnv MELLON_DISABLE_SAMESITE 1
ScriptAliasMatch "^/secret/?$" "%[2]s/cgi/secret.cgi"
<Location />
  MellonEnable info
  MellonSPentityId "%[5]s"
  MellonSPPrivateKeyFile %[4]s.key
  MellonSPCertFile %[4]s.cert
  MellonSPMetadataFile %[4]s.xml
  MellonIdPMetadataFile %[2]s/idp.xml
  MellonEndpointPath /mellon
  MellonSecureCookie Off
  MellonSetEnv mail urn:oid:0.9.2342.19200300.100.1.3
</Location>
<Location /secret>
  AuthType Mellon
  MellonEnable auth
  Require valid-user
  Header always set X-NameID "%%{MELLON_NAME_ID}e"
</Location>
`, m.addr, m.dir, runAs, m.base, mellonEntity)
	writeFile(t, m.dir, "httpd.conf", []byte(conf), 0o644)
	startDaemon(t, exec.Command(m.apache, "-f", filepath.Join(m.dir, "httpd.conf"), "-DFOREGROUND"),
		m.addr, filepath.Join(m.dir, "error.log"))
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
	s := &ssp{dir: peerDir(t, "idb-ssp-"), addr: testlib.FreePort(t), php: php}
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
	startDaemon(t, cmd, s.addr, filepath.Join(s.dir, "log", "simplesamlphp.log"))
}
