package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// /logout asks the single-logout hook before it ends the session, and sends
// the browser where the hook says; the hook sees the session still alive.
func TestLogoutHook(t *testing.T) {
	e := newEnv(t)
	e.createUser("hooky", "hooky@example.org", "correct horse battery", false)
	b := e.browser()
	b.login("hooky", "correct horse battery")
	var gotID, gotReturn string
	var aliveDuringHook bool
	e.web.OnLogout(func(ctx context.Context, sessionID, returnTo string) (string, error) {
		gotID, gotReturn = sessionID, returnTo
		_, err := e.st.GetSession(ctx, sessionID)
		aliveDuringHook = err == nil
		return "/healthz?slo=1", nil
	})
	p := b.submit("/logout", "/logout", url.Values{})
	if gotID == "" || !aliveDuringHook {
		t.Fatalf("hook called with session %q (alive during hook: %v)", gotID, aliveDuringHook)
	}
	if gotReturn != "/login?done=logout" {
		t.Errorf("hook returnTo = %q", gotReturn)
	}
	if !strings.HasSuffix(p.url, "/healthz?slo=1") {
		t.Errorf("after logout at %s, want the hook's URL", p.url)
	}
	if _, err := e.st.GetSession(context.Background(), gotID); err == nil {
		t.Error("session still alive after logout")
	}
	if p := b.get("/account"); strings.HasSuffix(p.url, "/account") {
		t.Error("still logged in after logout")
	}
}

func TestRenderErrorEscapes(t *testing.T) {
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.web.RenderError(rec, httptest.NewRequest("GET", "/saml/sso", nil), http.StatusForbidden, `unknown issuer <script>"x"`)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d", rec.Code)
	}
	body := rec.Body.String()
	if strings.Contains(body, "<script>") || !strings.Contains(body, "unknown issuer &lt;script&gt;") {
		t.Fatalf("message not shown escaped:\n%s", body)
	}
}
