package config

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimal is the least a valid production config needs.
const minimal = `
base_url: https://id.example.org
virtual_domain: id.example.org
mail_out:
  smarthost: {address: "smtp.example.org:587"}
forward:
  operator_address: infra@example.org
`

// TestBadConfigs loads every testdata/bad/<name>/config.yaml and checks that
// the error holds each line of <name>/error.txt.
func TestBadConfigs(t *testing.T) {
	dirs, err := filepath.Glob("testdata/bad/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 20 {
		t.Fatalf("only %d bad configs in testdata/bad", len(dirs))
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join(dir, "error.txt"))
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(filepath.Join(dir, "config.yaml"), nil)
			if err == nil {
				t.Fatalf("loaded without error: %+v", c)
			}
			if c != nil {
				t.Errorf("Load returned a config with the error")
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, not *ValidationError: %v", err, err)
			}
			got := err.Error()
			for line := range strings.Lines(string(want)) {
				line = strings.TrimRight(line, "\n")
				if line != "" && !strings.Contains(got, line) {
					t.Errorf("error lacks %q; got:\n%s", line, got)
				}
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no good configs")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := Load(f, nil); err != nil {
				t.Fatalf("Load: %v", err)
			}
		})
	}
}

func TestFullConfig(t *testing.T) {
	c, err := Load("testdata/good/full.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"virtual_domain lower-cased", c.VirtualDomain, "id.example.org"},
		{"trusted_proxies", c.HTTP.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.7"}},
		{"smarthost username", c.MailOut.Smarthost.Username, "idbridge"},
		{"rate limit window", c.MailOut.RateLimit.Window, 2 * Hour},
		{"srs_max_age in days", c.Forward.SRSMaxAge.Duration(), 21 * 24 * time.Hour},
		{"queue_lifetime", c.Forward.QueueLifetime, 72 * Hour},
		{"max_message_bytes", c.Forward.MaxMessageBytes, 50 * MiB},
		{"forward smarthost tls", c.Forward.Smarthost.TLS, TLSOpportunistic},
		{"sp count", len(c.SAML.ServiceProviders), 3},
		{"sp attributes", c.SAML.ServiceProviders[0].Attributes, AttributesAtlassian},
		{"sp acs with query", c.SAML.ServiceProviders[0].ACSURL, "https://auth.atlassian.com/login/callback?connection=saml-0000"},
		{"metadata sp default attributes", c.SAML.ServiceProviders[1].Attributes, AttributesGeneric},
		{"metadata sp name_id", c.SAML.ServiceProviders[1].NameID, NameIDPersistent},
		{"oidc redirect", c.OIDC.Clients[0].RedirectURIs, []string{"https://wiki.example.org/cb"}},
		{"discourse", c.Discourse[0], Discourse{Name: "talk", URL: "https://talk.example.org", SecretFile: "testdata/files/talk.secret"}},
		{"site name", c.Site.Name, "OpenMRS ID"},
		{"argon2", c.Accounts.Argon2, Argon2{MemoryKiB: 47104, Iterations: 1, Parallelism: 2}},
		{"captcha", c.Accounts.Captcha.Provider, "turnstile"},
		{"sessions", c.Sessions, Sessions{IdleTimeout: Hour, AbsoluteLifetime: 8 * Hour}},
		{"throttle", c.Throttle.WaitIncrement, 30 * Second},
		{"tokens", c.Tokens, Tokens{VerifyTTL: 24 * Hour, ResetTTL: 30 * Minute}},
		{"log", c.Log, Log{Level: "warn", Format: "json"}},
	}
	for _, k := range checks {
		if !reflect.DeepEqual(k.got, k.want) {
			t.Errorf("%s: got %#v, want %#v", k.name, k.got, k.want)
		}
	}
}

func TestDefaultsAndDerived(t *testing.T) {
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"store from data_dir", c.Store, "sqlite:/var/lib/idbridge/idbridge.db"},
		{"srs_domain", c.Forward.SRSDomain, "id.example.org"},
		{"hostname", c.Forward.Hostname, "id.example.org"},
		{"mail from", c.MailOut.From, "noreply@id.example.org"},
		{"http listen", c.HTTP.Listen, "127.0.0.1:8080"},
		{"forward listen", c.Forward.Listen, "0.0.0.0:25"},
		{"delivery", c.Forward.Delivery, DeliveryDirect},
		{"smarthost tls", c.MailOut.Smarthost.TLS, TLSRequired},
		{"max message", c.Forward.MaxMessageBytes, ByteSize(25 << 20)},
		{"max recipients", c.Forward.MaxRecipients, 100},
		{"max connections", c.Forward.MaxConnections, 200},
		{"per ip", c.Forward.MaxConnectionsPerIP, 20},
		{"command timeout", c.Forward.CommandTimeout, 5 * Minute},
		{"data timeout", c.Forward.DataTimeout, 10 * Minute},
		{"ranges refresh", c.Forward.IPRangesRefresh, Hour},
		{"queue lifetime", c.Forward.QueueLifetime, 120 * Hour},
		{"delivery port", c.Forward.DeliveryPort, 25},
		{"srs max age", c.Forward.SRSMaxAge, 21 * 24 * Hour},
		{"unverified ttl", c.Accounts.UnverifiedTTL, 48 * Hour},
		{"password min", c.Accounts.PasswordMinLength, 8},
		{"argon2", c.Accounts.Argon2, Argon2{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}},
		{"register min", c.Accounts.RegisterMinSeconds, 3},
		{"register max age", c.Accounts.RegisterMaxAge, Hour},
		{"captcha off", c.Accounts.Captcha.Provider, ""},
		{"sessions", c.Sessions, Sessions{IdleTimeout: 30 * Minute, AbsoluteLifetime: 10 * Hour}},
		{"throttle", c.Throttle, Throttle{MaxFailures: 30, WaitIncrement: Minute, MaxWait: 15 * Minute, ResetAfter: 12 * Hour}},
		{"rate limit", c.MailOut.RateLimit, RateLimit{PerAddress: 5, Window: Hour}},
		{"retry lifetime", c.MailOut.RetryLifetime, 24 * Hour},
		{"tokens", c.Tokens, Tokens{VerifyTTL: 48 * Hour, ResetTTL: Hour}},
		{"log", c.Log, Log{Level: "info", Format: "text"}},
		{"not dev", c.DevMode, false},
	}
	for _, k := range checks {
		if !reflect.DeepEqual(k.got, k.want) {
			t.Errorf("%s: got %#v, want %#v", k.name, k.got, k.want)
		}
	}
}

func TestSPDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal+`
saml:
  service_providers:
    - {name: sp, entity_id: "urn:example:sp", acs_url: "https://sp.example.org/acs"}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	sp := c.SAML.ServiceProviders[0]
	if sp.NameID != NameIDVirtualAddress || sp.Attributes != AttributesGeneric || sp.Sign != SignResponse {
		t.Errorf("SP defaults: %+v", sp)
	}
}

func TestNullKeepsDefaultsForMappings(t *testing.T) {
	c, err := Parse([]byte(minimal+"http:\nsessions: ~\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:8080" || c.Sessions.IdleTimeout != 30*Minute {
		t.Errorf("a null mapping lost the defaults: %+v %+v", c.HTTP, c.Sessions)
	}
}

func TestEnvOverrides(t *testing.T) {
	env := []string{
		"PATH=/usr/bin",
		"IDBRIDGE_CONFIG=/etc/idbridge/config.yaml",
		"IDBRIDGE_TEST_POSTGRES=postgres://localhost/test",
		"IDBRIDGE_BASE_URL=https://login.example.org",
		"IDBRIDGE_HTTP__LISTEN=0.0.0.0:9000",
		"IDBRIDGE_HTTP__TRUSTED_PROXIES=10.0.0.0/8, 192.168.0.0/16,",
		"IDBRIDGE_DNS__SERVERS=",
		"IDBRIDGE_MAIL_OUT__SMARTHOST__ADDRESS=relay.example.org:25",
		"IDBRIDGE_MAIL_OUT__SMARTHOST__TLS=opportunistic",
		"IDBRIDGE_FORWARD__ALLOW__DOMAINS=atlassian.net,atlassian.com",
		"IDBRIDGE_FORWARD__MAX_MESSAGE_BYTES=10MB",
		"IDBRIDGE_FORWARD__MAX_RECIPIENTS=7",
		"IDBRIDGE_FORWARD__SRS_MAX_AGE=7d",
		"IDBRIDGE_ACCOUNTS__ARGON2__MEMORY_KIB=64",
		"IDBRIDGE_ACCOUNTS__ARGON2__ITERATIONS=1",
		"IDBRIDGE_ACCOUNTS__ARGON2__ALLOW_WEAK=true",
		"IDBRIDGE_SESSIONS__IDLE_TIMEOUT=5m",
	}
	c, err := Parse([]byte(minimal+"dns: {servers: [\"127.0.0.1\"]}\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"top level", c.BaseURL, "https://login.example.org"},
		{"nested", c.HTTP.Listen, "0.0.0.0:9000"},
		{"list", c.HTTP.TrustedProxies, []string{"10.0.0.0/8", "192.168.0.0/16"}},
		{"empty list clears the file's", len(c.DNS.Servers), 0},
		{"three levels", c.MailOut.Smarthost.Address, "relay.example.org:25"},
		{"enum", c.MailOut.Smarthost.TLS, TLSOpportunistic},
		{"nested list", c.Forward.Allow.Domains, []string{"atlassian.net", "atlassian.com"}},
		{"byte size", c.Forward.MaxMessageBytes, ByteSize(10_000_000)},
		{"int", c.Forward.MaxRecipients, 7},
		{"days", c.Forward.SRSMaxAge, 7 * 24 * Hour},
		{"uint", c.Accounts.Argon2.MemoryKiB, uint32(64)},
		{"bool", c.Accounts.Argon2.AllowWeak, true},
		{"duration", c.Sessions.IdleTimeout, 5 * Minute},
	}
	for _, k := range checks {
		if !reflect.DeepEqual(k.got, k.want) {
			t.Errorf("%s: got %#v, want %#v", k.name, k.got, k.want)
		}
	}
}

func TestEnvOnlyNoFile(t *testing.T) {
	c, err := Load("", []string{
		"IDBRIDGE_BASE_URL=https://id.example.org",
		"IDBRIDGE_VIRTUAL_DOMAIN=id.example.org",
		"IDBRIDGE_MAIL_OUT__SMARTHOST__ADDRESS=smtp.example.org:587",
		"IDBRIDGE_FORWARD__OPERATOR_ADDRESS=infra@example.org",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.VirtualDomain != "id.example.org" {
		t.Errorf("virtual domain %q", c.VirtualDomain)
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"unknown", []string{"IDBRIDGE_NOPE=1"}, []string{"IDBRIDGE_NOPE: unknown environment variable"}},
		{"single underscore", []string{"IDBRIDGE_HTTP_LISTEN=:80"},
			[]string{"IDBRIDGE_HTTP_LISTEN: unknown environment variable (did you mean IDBRIDGE_HTTP__LISTEN? levels are separated by __)"}},
		{"unknown nested", []string{"IDBRIDGE_FORWARD__ALLOW__IPS=1.2.3.4"}, []string{"IDBRIDGE_FORWARD__ALLOW__IPS"}},
		{"list of mappings", []string{"IDBRIDGE_SAML__SERVICE_PROVIDERS=x"},
			[]string{"saml.service_providers: a list of mappings can only be set in the config file (IDBRIDGE_SAML__SERVICE_PROVIDERS)"}},
		{"inside a list of mappings", []string{"IDBRIDGE_SAML__SERVICE_PROVIDERS__0__NAME=x"},
			[]string{"saml.service_providers is a list of mappings"}},
		{"bad int", []string{"IDBRIDGE_FORWARD__MAX_RECIPIENTS=lots"},
			[]string{`forward.max_recipients: "lots" is not a whole number (IDBRIDGE_FORWARD__MAX_RECIPIENTS)`}},
		{"bad duration", []string{"IDBRIDGE_THROTTLE__MAX_WAIT=15"}, []string{`throttle.max_wait: "15" has no unit`}},
		{"bad bool", []string{"IDBRIDGE_ACCOUNTS__ARGON2__ALLOW_WEAK=yes please"}, []string{`"yes please" is not true or false`}},
		{"bad list item", []string{"IDBRIDGE_HTTP__TRUSTED_PROXIES=10.0.0.0/8,nonsense"},
			[]string{`http.trusted_proxies[1]: "nonsense" is not a CIDR`, "(IDBRIDGE_HTTP__TRUSTED_PROXIES)"}},
		{"validation names the variable", []string{"IDBRIDGE_LOG__LEVEL=loud"},
			[]string{`log.level: "loud" is not one of debug, info, warn, error (IDBRIDGE_LOG__LEVEL)`}},
		{"all at once", []string{"IDBRIDGE_A=1", "IDBRIDGE_B=2", "IDBRIDGE_LOG__FORMAT=xml"},
			[]string{"IDBRIDGE_A", "IDBRIDGE_B", "log.format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimal), tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

func TestEnvNamesCoverEveryLeaf(t *testing.T) {
	names := EnvNames()
	for _, want := range []string{
		"IDBRIDGE_BASE_URL", "IDBRIDGE_HTTP__LISTEN", "IDBRIDGE_MAIL_OUT__SMARTHOST__ADDRESS",
		"IDBRIDGE_MAIL_OUT__RATE_LIMIT__PER_ADDRESS", "IDBRIDGE_FORWARD__TLS__CERT_FILE",
		"IDBRIDGE_FORWARD__ALLOW__IP_RANGES_URLS", "IDBRIDGE_FORWARD__DKIM__SELECTOR",
		"IDBRIDGE_ACCOUNTS__ARGON2__ALLOW_WEAK", "IDBRIDGE_ACCOUNTS__CAPTCHA__SECRET_FILE",
		"IDBRIDGE_SAML__KEY_FILE", "IDBRIDGE_LOG__FORMAT",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("EnvNames lacks %s", want)
		}
	}
	for _, n := range names {
		if strings.Contains(n, "DEV") || strings.Contains(n, "SOURCES") || strings.Contains(n, "SERVICE_PROVIDERS") {
			t.Errorf("EnvNames has %s", n)
		}
	}
}

// TestDocsListEveryKey keeps docs/config.md in step with the struct.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			k := yamlKey(t.Field(i))
			if k == "" {
				continue
			}
			p := join(path, k)
			ft := t.Field(i).Type
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				ft, p = ft.Elem(), p+"[]"
			}
			if ft.Kind() == reflect.Struct {
				walk(ft, p)
				continue
			}
			keys[p] = true
		}
	}
	walk(reflect.TypeFor[Config](), "")
	for k := range keys {
		if !bytes.Contains(doc, []byte("`"+k+"`")) {
			t.Errorf("docs/config.md does not list `%s`", k)
		}
	}
}

func TestDev(t *testing.T) {
	dir := t.TempDir()
	c := Dev(dir)
	if err := c.Validate(); err != nil {
		t.Fatalf("Dev config invalid:\n%v", err)
	}
	if !c.DevMode || c.VirtualDomain != "id.localhost" || c.Forward.Listen != "127.0.0.1:2525" ||
		c.BaseURL != "http://127.0.0.1:8080" || c.Store != "sqlite:"+filepath.Join(dir, "idbridge.db") || c.DataDir != dir {
		t.Errorf("Dev: %+v", c)
	}
	for _, tt := range []struct{ addr, base string }{
		{"127.0.0.1:43123", "http://127.0.0.1:43123"},
		{"0.0.0.0:8080", "http://127.0.0.1:8080"},
		{":8080", "http://127.0.0.1:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
		{"localhost:9000", "http://localhost:9000"},
	} {
		c.SetListen(tt.addr)
		if c.BaseURL != tt.base || c.HTTP.Listen != tt.addr {
			t.Errorf("SetListen(%q): base_url %q, listen %q", tt.addr, c.BaseURL, c.HTTP.Listen)
		}
	}
	// Dev accepts http service providers anywhere, and env overrides.
	c.SAML.ServiceProviders = []ServiceProvider{{Name: "sp", EntityID: "http://sp.test/md", ACSURL: "http://sp.test/acs",
		NameID: NameIDVirtualAddress, Attributes: AttributesGeneric, Sign: SignResponse}}
	if err := c.ApplyEnv([]string{"IDBRIDGE_DNS__SERVERS=127.0.0.1:5353"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Dev with http SP: %v", err)
	}
	if !reflect.DeepEqual(c.DNS.Servers, []string{"127.0.0.1:5353"}) {
		t.Errorf("ApplyEnv: %v", c.DNS.Servers)
	}
	if err := c.ApplyEnv([]string{"IDBRIDGE_DEV_MODE=false"}); err == nil || !c.DevMode {
		t.Errorf("DevMode was settable from the environment")
	}
	if _, err := Parse([]byte(minimal+"dev_mode: true\n"), nil); err == nil {
		t.Errorf("dev_mode was accepted in YAML")
	}
}

func TestValidateCollectsEveryMistake(t *testing.T) {
	c := Default()
	c.Log.Level = "loud"
	c.Throttle.MaxFailures = 0
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v", err)
	}
	var paths []string
	for _, p := range ve.Problems {
		paths = append(paths, p.Path)
	}
	for _, want := range []string{"base_url", "virtual_domain", "store", "log.level", "throttle.max_failures", "mail_out.smarthost.address"} {
		if !slices.Contains(paths, want) {
			t.Errorf("no problem for %s in %v", want, paths)
		}
	}
	// The problems are reachable through errors.As one by one, too.
	var one *Error
	if !errors.As(err, &one) || one.Path == "" {
		t.Errorf("errors.As(*Error): %v", one)
	}
}

func TestUnknownKeyLineNumbers(t *testing.T) {
	_, err := Parse([]byte("base_url: https://id.example.org\nforward:\n  allow:\n    network: []\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "forward.allow.network: unknown key (line 4)") {
		t.Fatalf("got %v", err)
	}
	// Only unknown-key errors come with "did you mean" when a key is close.
	if strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a far key got a suggestion: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"30m", 30 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"21d", 21 * 24 * time.Hour, ""},
		{"1d12h", 36 * time.Hour, ""},
		{" 90s ", 90 * time.Second, ""},
		{"-5m", -5 * time.Minute, ""},
		{"", 0, "empty duration"},
		{"30", 0, `"30" has no unit`},
		{"1.5", 0, "has no unit"},
		{"soon", 0, "is not a duration"},
		{"2 days", 0, "is not a duration"},
		{"d", 0, "is not a duration"},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseDuration(%q) error %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got.Duration() != tt.want):
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"1024", 1024, true},
		{"25MiB", 25 << 20, true},
		{"25 mib", 25 << 20, true},
		{"10MB", 10_000_000, true},
		{"1k", 1024, true},
		{"2GiB", 2 << 30, true},
		{"7B", 7, true},
		{"-1", 0, false},
		{"MiB", 0, false},
		{"1.5MiB", 0, false},
		{"99999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path, want, wantErr string
	}{
		{write("plain", "s3cret"), "s3cret", ""},
		{write("newline", "s3cret\n"), "s3cret", ""},
		{write("crlf", "s3cret\r\n\n"), "s3cret", ""},
		{write("inner space", " s 3 "), " s 3 ", ""},
		{write("empty", ""), "", "is empty"},
		{write("only newline", "\n"), "", "is empty"},
		{write("huge", strings.Repeat("x", maxSecretSize+1)), "", "not a secret"},
		{filepath.Join(dir, "absent"), "", "no such file"},
		{dir, "", "cannot read"},
	}
	for _, tt := range tests {
		got, err := ReadSecretFile(tt.path)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.path, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %q, %v", tt.path, got, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	c, err := Load("testdata/good/full.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Forward.Allow.IPRangesURLs = []string{"https://u:tok@ranges.example.org/?password=p&x=1"}
	r := c.Redacted()
	if got := r["store"]; got != "postgres://idbridge:xxxxx@db.example.org/idbridge" {
		t.Errorf("store: %v", got)
	}
	urls := r["forward"].(map[string]any)["allow"].(map[string]any)["ip_ranges_urls"].([]any)
	if s := urls[0].(string); strings.Contains(s, "tok") || strings.Contains(s, "password=p") {
		t.Errorf("ip_ranges_urls not redacted: %s", s)
	}
	if got := r["sessions"].(map[string]any)["idle_timeout"]; got != "1h0m0s" {
		t.Errorf("duration shown as %v", got)
	}
	if got := r["mail_out"].(map[string]any)["smarthost"].(map[string]any)["password_file"]; got != "testdata/files/smtp.secret" {
		t.Errorf("password_file shown as %v", got)
	}
	if c.Store != "postgres://idbridge:s3cret@db.example.org/idbridge" {
		t.Errorf("Redacted changed the config: %s", c.Store)
	}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "config", c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "config", c)
	for _, out := range []string{text.String(), js.String()} {
		if strings.Contains(out, "s3cret") || strings.Contains(out, "tok@") {
			t.Errorf("log leaks a secret: %s", out)
		}
		if !regexp.MustCompile(`http.\W*listen`).MatchString(out) || !strings.Contains(out, "127.0.0.1:8080") {
			t.Errorf("log lacks http.listen: %s", out)
		}
	}
}
