package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/store"
)

// BenchmarkSSOLaunch is bench/saml in one process: IdP-initiated SSO to an
// Atlassian-shaped SP (sign: response) for a logged-in member, through the
// whole HTTP handler of serve, on SQLite. go test -bench SSOLaunch -cpuprofile
// shows where the time goes besides the one RSA signature.
func BenchmarkSSOLaunch(b *testing.B) {
	_, s, cookies := ssoServer(b)
	b.ResetTimer()
	for b.Loop() {
		if rec := launch(s, cookies); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "SAMLResponse") {
			b.Fatalf("launch: %d\n%s", rec.Code, rec.Body.String())
		}
	}
}

// An assertion issued is in the audit trail and in idbridge_sso_total.
func TestSSOAuditAndMetric(t *testing.T) {
	a, s, cookies := ssoServer(t)
	for range 2 {
		if rec := launch(s, cookies); rec.Code != http.StatusOK {
			t.Fatalf("launch: %d", rec.Code)
		}
	}
	evs, err := a.st.ListAudit(context.Background(), store.AuditFilter{Type: "sso.saml"})
	if err != nil || len(evs) != 2 || evs[0].Username != "bench" || evs[0].Detail != "atlassian" || evs[0].IP == "" {
		t.Fatalf("audit: %+v, %v", evs, err)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `idbridge_sso_total{client="atlassian",protocol="saml",result="issued"} 2`) {
		t.Errorf("metrics lack the SSO count:\n%s", rec.Body.String())
	}
}

func launch(s *servers, cookies []*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "/saml/launch/atlassian", nil)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

// ssoServer builds serve as idbridge serve does, with one Atlassian-shaped
// SP, and logs a member in; it returns the session cookies.
func ssoServer(b testing.TB) (*app, *servers, []*http.Cookie) {
	ctx := context.Background()
	dir := b.TempDir()
	cfg := config.Dev(dir)
	cfg.DevMode = false
	cfg.Log.Level = "warn"
	cfg.Forward.Listen = ""
	cfg.MailOut.Smarthost = config.Smarthost{Address: "127.0.0.1:9", TLS: config.TLSNone}
	cfg.SAML.ServiceProviders = []config.ServiceProvider{{Name: "atlassian", EntityID: "https://auth.atlassian.com/saml/0000",
		ACSURL: "https://auth.atlassian.com/login/callback?connection=saml-0000", NameID: config.NameIDVirtualAddress,
		Attributes: config.AttributesAtlassian, Sign: config.SignResponse, DefaultRelayState: "https://example.atlassian.net"}}
	srv := httptest.NewUnstartedServer(nil)
	cfg.SetListen(srv.Listener.Addr().String())
	a, err := newApp(ctx, cfg, quietLogger(io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.close)
	s, err := a.build(ctx)
	if err != nil {
		b.Fatal(err)
	}
	srv.Config.Handler = s.handler
	srv.Start()
	b.Cleanup(srv.Close)
	if _, err := a.accounts.Create(ctx, account.CreateInput{Username: "bench", FirstName: "B", LastName: "S",
		Email: "bench@example.org", Password: "bench-Passw0rd!"}, "cli"); err != nil {
		b.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(srv.URL + "/login")
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		b.Fatal("no csrf")
	}
	req, _ := http.NewRequest("POST", srv.URL+"/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "login": {"bench"}, "password": {"bench-Passw0rd!"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", srv.URL)
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("login: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	return a, s, jar.Cookies(mustURL(srv.URL))
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// BenchmarkRSASign2048 is the raw signature that BenchmarkSSOLaunch makes
// once per response: RSA-2048 PKCS#1 v1.5 over a SHA-256 digest.
func BenchmarkRSASign2048(b *testing.B) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("idbridge"))
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}
