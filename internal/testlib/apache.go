package testlib

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// MellonEntityID is the entity id of the SP that NewMellon makes.
const MellonEntityID = "https://sp.test/mellon/metadata"

// Mellon is a private Apache with mod_auth_mellon as a SAML SP. /secret/ is
// a CGI behind `AuthType Mellon` that prints MELLON_NAME_ID and MELLON_mail
// (one line each) and sends them as the X-NameID and X-Mail headers too;
// /bye.html is a page to return to after logout. Mellon's endpoints are
// under /mellon.
//
// MELLON_DISABLE_SAMESITE: mellon marks the cookie it sets before sending
// the browser to the IdP SameSite=None, whatever MellonCookieSameSite says,
// and Chromium drops a SameSite=None cookie without Secure (which needs
// https). Without the attribute Chromium treats it as Lax, and every port
// of 127.0.0.1 is one site, so nothing is lost here; in production mellon
// runs on https with SameSite=None; Secure.
type Mellon struct {
	URL      string // http://127.0.0.1:PORT
	Addr     string // 127.0.0.1:PORT
	Dir      string // config, keys, pages and error.log; readable by www-data
	Metadata string // the SP metadata file (mellon_create_metadata's), for the IdP

	base   string // path of the SP files without extension
	apache string
}

// NewMellon makes the SP's key, certificate and metadata on a free port;
// Start runs Apache once the IdP (whose metadata it needs) is up. It skips
// the test when Apache, mellon_create_metadata or the module is absent
// (fails under CI, as Need).
func NewMellon(t testing.TB) *Mellon {
	t.Helper()
	apache := Need(t, "apache2")
	mkmeta := Need(t, "mellon_create_metadata")
	if _, err := os.Stat("/usr/lib/apache2/modules/mod_auth_mellon.so"); err != nil {
		Need(t, "mod_auth_mellon.so") // skips, or fails under CI
	}
	m := &Mellon{Dir: PublicDir(t, "mellon", 0o755), Addr: FreePort(t), apache: apache}
	m.URL = "http://" + m.Addr
	cmd := exec.Command(mkmeta, MellonEntityID, m.URL+"/mellon")
	cmd.Dir = m.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mellon_create_metadata: %v\n%s", err, out)
	}
	m.base = filepath.Join(m.Dir, "https_sp.test_mellon_metadata")
	for _, ext := range []string{".key", ".cert", ".xml"} {
		os.Chmod(m.base+ext, 0o644)
	}
	m.Metadata = m.base + ".xml"
	return m
}

// Start runs Apache (in the foreground, as www-data when root) with
// idpMetadata as mellon's IdP until the test ends, and waits until it
// listens; error.log is shown when the test fails.
func (m *Mellon) Start(t TB, idpMetadata []byte) *Daemon {
	t.Helper()
	writeFile(t, m.Dir, "idp.xml", idpMetadata, 0o644)
	writeFile(t, m.Dir, "cgi/secret.cgi", []byte("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"+
		"printf 'MELLON_NAME_ID=%s\\n' \"$MELLON_NAME_ID\"\nprintf 'MELLON_mail=%s\\n' \"$MELLON_mail\"\n"), 0o755)
	os.Chmod(filepath.Join(m.Dir, "cgi"), 0o755)
	writeFile(t, m.Dir, "htdocs/bye.html", []byte("bye\n"), 0o644)
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
  Header always set X-Mail "%%{MELLON_mail}e"
</Location>
`, m.Addr, m.Dir, runAs, m.base, MellonEntityID)
	writeFile(t, m.Dir, "httpd.conf", []byte(conf), 0o644)
	return StartDaemon(t, exec.Command(m.apache, "-f", filepath.Join(m.Dir, "httpd.conf"), "-DFOREGROUND"),
		m.Addr, filepath.Join(m.Dir, "error.log"))
}

// writeFile writes dir/name (making its folder) with exactly mode, whatever
// the umask, and returns its path.
func writeFile(t TB, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("%v", err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatalf("%v", err)
	}
	os.Chmod(p, mode)
	return p
}
