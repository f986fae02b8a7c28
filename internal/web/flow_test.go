package web

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestWholeFlow walks register → mail → verify → login by username and by
// email → account page → change password ends other sessions → logout.
func TestWholeFlow(t *testing.T) {
	e := newEnv(t)
	b := e.browser()

	// Register.
	p := b.register(url.Values{
		"username": {"Alice"}, "first_name": {"Alice"}, "last_name": {"Liddell"},
		"email": {"alice@example.org"}, "password": {"correct horse battery"},
		"password_confirm": {"correct horse battery"},
	}, 5*time.Second)
	if !strings.HasSuffix(p.url, "/register/done") || !strings.Contains(p.body, "Check your mail") {
		t.Fatalf("register: %d at %s\n%s", p.status, p.url, p.body)
	}

	// Not verified yet: the right password says so, with a resend link.
	p = b.submit("/login", "/login", url.Values{"login": {"alice"}, "password": {"correct horse battery"}})
	if p.status != 422 || !strings.Contains(p.body, "Please verify your email first") || !strings.Contains(p.body, "/verify/resend?login=alice") {
		t.Fatalf("unverified login: %d\n%s", p.status, p.body)
	}

	// The mail's link shows a button (GET does not use the token up) …
	link := e.mailLink("alice@example.org", "/verify?token=")
	p = b.get(link)
	if p.status != 200 || !strings.Contains(p.body, `action="/verify"`) {
		t.Fatalf("verify page: %d\n%s", p.status, p.body)
	}
	p = b.get(link)
	if p.status != 200 {
		t.Fatalf("verify page again: %d", p.status)
	}
	// … and POST verifies.
	tok := mustQuery(t, link, "token")
	p = b.submit(link, "/verify", url.Values{"token": {tok}})
	if !strings.Contains(p.url, "/login?done=verified") || !strings.Contains(p.body, "Your email address is confirmed") {
		t.Fatalf("verify: %d at %s\n%s", p.status, p.url, p.body)
	}
	// A used token is refused.
	p = b.submit(link, "/verify", url.Values{"token": {tok}})
	if p.status != 422 || !strings.Contains(p.body, "invalid or has expired") {
		t.Fatalf("verify twice: %d\n%s", p.status, p.body)
	}

	// Log in by username; the account page shows the virtual address.
	p = b.login("alice", "correct horse battery")
	if !strings.Contains(p.body, `id="virtual-address">alice@`+testDomain+`<`) {
		t.Fatalf("account page lacks the virtual address:\n%s", p.body)
	}
	if p.header.Get("Cache-Control") != "no-store" {
		t.Errorf("account page Cache-Control = %q", p.header.Get("Cache-Control"))
	}
	first := b.cookie(SessionCookie).Value

	// Logging in again rotates the session: the old cookie is dead.
	b.login("alice", "correct horse battery")
	if b.cookie(SessionCookie).Value == first {
		t.Error("session cookie not rotated at login")
	}
	if _, _, err := e.acc.Session(context.Background(), first); err == nil {
		t.Error("previous session still alive after a new login")
	}

	// Log in by email in a second browser.
	b2 := e.browser()
	b2.login("ALICE@example.org", "correct horse battery")
	p = b.get("/account")
	if strings.Count(p.body, `action="/account/sessions/end"`) != 2 || !strings.Contains(p.body, "(this browser)") {
		t.Fatalf("account page should list two sessions, one marked current:\n%s", p.body)
	}

	// Changing the password in b ends b2's session, not b's.
	p = b.submit("/account", "/account/password", url.Values{
		"current_password": {"correct horse battery"}, "new_password": {"a new long passphrase"},
		"new_password_confirm": {"a new long passphrase"},
	})
	if !strings.Contains(p.url, "/account?done=password") || !strings.Contains(p.body, "Your password has been changed") {
		t.Fatalf("change password: %d at %s\n%s", p.status, p.url, p.body)
	}
	if p := b2.get("/account"); !strings.Contains(p.url, "/login?continue=%2Faccount") {
		t.Fatalf("other session still logged in after password change: %s", p.url)
	}
	if p := b.get("/account"); !strings.HasSuffix(p.url, "/account") {
		t.Fatalf("own session ended by password change: %s", p.url)
	}

	// Logout: GET asks, POST does it.
	p = b.get("/logout")
	if p.status != 200 || !strings.Contains(p.body, `action="/logout"`) {
		t.Fatalf("logout page: %d\n%s", p.status, p.body)
	}
	if _, _, ok := currentOf(e, b); !ok {
		t.Fatal("GET /logout logged out")
	}
	p = b.submit("/logout", "/logout", url.Values{})
	if !strings.Contains(p.url, "/login?done=logout") || !strings.Contains(p.body, "You have been logged out") {
		t.Fatalf("logout: %d at %s", p.status, p.url)
	}
	if p := b.get("/account"); !strings.Contains(p.url, "/login") {
		t.Fatalf("still logged in after logout: %s", p.url)
	}
	b.login("alice@example.org", "a new long passphrase")
}

func currentOf(e *env, b *browser) (string, string, bool) {
	c := b.cookie(SessionCookie)
	if c == nil {
		return "", "", false
	}
	s, a, err := e.acc.Session(context.Background(), c.Value)
	return s.ID, a.Username, err == nil
}

func mustQuery(t *testing.T, link, key string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	v := u.Query().Get(key)
	if v == "" {
		t.Fatalf("%s has no %s", link, key)
	}
	return v
}
