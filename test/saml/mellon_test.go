package saml

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/internal/testlib"
	"github.com/idbridge/idbridge/internal/testlib/chrometest"
)

// TestMellon drives Apache + mod_auth_mellon against the real binary:
// SP-initiated login (signed AuthnRequest, idbridge's login form, the
// auto-POST to mellon's ACS), logout at idbridge ending mellon's session by
// front-channel SLO, IdP-initiated login through /saml/launch/mellon, and
// the same SP-initiated login in headless Chromium.
func TestMellon(t *testing.T) {
	t.Parallel()
	m := newMellon(t)
	in := startIDB(t, m.spConf())
	m.start(t, in)
	u := in.addUser(t, "mellonuser", false)

	checkSecret := func(t *testing.T, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != 200 || resp.Request.URL.String() != m.URL+"/secret/" {
			t.Fatalf("ended on %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 1500))
		}
		if !strings.Contains(body, "MELLON_NAME_ID="+u.virtual()+"\n") {
			t.Errorf("protected page does not show MELLON_NAME_ID=%s:\n%s", u.virtual(), body)
		}
		if got := resp.Header.Get("X-NameID"); got != u.virtual() {
			t.Errorf("X-NameID (MELLON_NAME_ID by mod_headers) = %q, want %q", got, u.virtual())
		}
		if !strings.Contains(body, "MELLON_mail="+u.Email+"\n") {
			t.Errorf("protected page does not show MELLON_mail=%s:\n%s", u.Email, body)
		}
	}
	browser := newClient()

	t.Run("SP-initiated", func(t *testing.T) {
		resp, body := get(t, browser, m.URL+"/secret/")
		if !strings.HasPrefix(resp.Request.URL.String(), in.URL+"/login?") {
			t.Fatalf("GET /secret/ did not reach idbridge's login page: %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp, body = submitLogin(t, in, browser, resp, body, u.Name, password)
		p := mustPostPage(t, resp, body)
		if p.Action != m.URL+"/mellon/postResponse" {
			t.Errorf("form action %q, want mellon's ACS %s/mellon/postResponse", p.Action, m.URL)
		}
		resp, body = p.submit(t, browser)
		checkSecret(t, resp, body)
	})

	t.Run("logout at idbridge ends the mellon session", func(t *testing.T) {
		resp, _ := get(t, noFollow(browser), m.URL+"/secret/")
		if resp.StatusCode != 200 {
			t.Fatalf("no mellon session before logout (%d): the SP-initiated login failed", resp.StatusCode)
		}
		resp, body := logout(t, in, browser)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.String(), in.URL+"/") {
			t.Errorf("logout chain ended on %d %s:\n%s", resp.StatusCode, resp.Request.URL, truncate(body, 1000))
		}
		resp, _ = get(t, noFollow(browser), in.URL+"/account")
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/login") {
			t.Errorf("idbridge session survived logout: GET /account %d %q", resp.StatusCode, loc)
		}
		// mellon's session is gone: the protected page starts a login again.
		resp, _ = get(t, noFollow(browser), m.URL+"/secret/")
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, m.URL+"/mellon/login?") {
			t.Errorf("mellon session survived logout at idbridge: GET /secret/ %d %q", resp.StatusCode, loc)
		}
	})

	t.Run("IdP-initiated launch", func(t *testing.T) {
		b := newClient()
		resp, body := get(t, b, in.URL+"/saml/launch/mellon")
		resp, body = submitLogin(t, in, b, resp, body, u.Name, password)
		p := mustPostPage(t, resp, body)
		if got := p.Fields.Get("RelayState"); got != m.URL+"/secret/" {
			t.Errorf("RelayState %q, want default_relay_state %s/secret/", got, m.URL)
		}
		root := parseXML(t, p.responseXML(t))
		if irt := root.SelectAttrValue("InResponseTo", ""); irt != "" {
			t.Errorf("unsolicited response has InResponseTo=%q", irt)
		}
		resp, body = p.submit(t, b)
		checkSecret(t, resp, body)

		// Logout started at mellon (a signed LogoutRequest to /saml/slo)
		// ends the idbridge session too.
		resp, _ = get(t, b, m.URL+"/mellon/logout?ReturnTo="+url.QueryEscape(m.URL+"/bye.html"))
		if resp.StatusCode != 200 || resp.Request.URL.String() != m.URL+"/bye.html" {
			t.Errorf("mellon logout ended on %d %s", resp.StatusCode, resp.Request.URL)
		}
		resp, _ = get(t, noFollow(b), in.URL+"/account")
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "/login") {
			t.Errorf("idbridge session survived mellon's logout: GET /account %d %q", resp.StatusCode, loc)
		}
	})

	t.Run("Chromium", func(t *testing.T) {
		chromium := testlib.Need(t, "chromium")
		ctx := newChromium(t, chromium)
		step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			c, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := chromedp.Do(c, actions...); err != nil {
				loc, _ := chromedp.Run(ctx, chromedp.Location())
				t.Fatalf("chromium: %s: %v (at %s)", what, err, loc)
			}
		}
		step("open the protected page, reach the login form",
			chromedp.Navigate(m.URL+"/secret/"),
			chromedp.WaitVisible(chromedp.CSS("#password")))
		if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasPrefix(loc, in.URL+"/login?") {
			t.Fatalf("chromium is at %s, want idbridge's login page", loc)
		}
		step("log in",
			chromedp.SendKeys(chromedp.CSS("#login"), u.Name),
			chromedp.SendKeys(chromedp.CSS("#password"), password),
			chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
		// The auto-POST page submits itself to mellon, which redirects to
		// /secret/: wait for the CGI's text.
		deadline := time.Now().Add(30 * time.Second)
		var loc, text string
		for time.Now().Before(deadline) {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			text, _ = chromedp.Run(c, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
			// The location is read after the text: read before, it could
			// still name the auto-POST page while the text is already
			// mellon's.
			loc, _ = chromedp.Run(c, chromedp.Location())
			cancel()
			if strings.Contains(text, "MELLON_NAME_ID=") && loc == m.URL+"/secret/" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if loc != m.URL+"/secret/" || !strings.Contains(text, "MELLON_NAME_ID="+u.virtual()) {
			t.Fatalf("chromium ended at %s with:\n%s", loc, truncate(text, 1500))
		}
	})
}

// newChromium starts headless Chromium with a fresh profile; it stops when
// the test ends.
func newChromium(t *testing.T, chromium string) context.Context {
	t.Helper()
	profile := peerDir(t, "chromium")
	return chrometest.Start(t, chromium, profile)
}
