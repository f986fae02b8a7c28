package e2e

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/idbridge/idbridge/internal/testlib"
	"github.com/idbridge/idbridge/internal/testlib/chrometest"
)

// TestBrowser is the acceptance test of issue 2: a member walks steps 1–6
// through the real pages in headless Chromium, reading the mails idbridge
// sends from the dev outbox, once on SQLite and once on PostgreSQL.
func TestBrowser(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			chromium := testlib.Need(t, "chromium")
			env := append(b.env(t),
				// The dev config waits 3 s before a registration form may be
				// sent; 1 s keeps the test short and still checks the wait.
				"IDBRIDGE_ACCOUNTS__REGISTER_MIN_SECONDS=1")
			in := startDev(t, devOptions{Env: env})
			walkMember(t, in, newBrowser(t, chromium, in.URL))
		})
	}
}

// browser is one headless Chromium tab on an idbridge instance.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newBrowser(t *testing.T, chromium, base string) *browser {
	t.Helper()
	profile := t.TempDir() // removed after the browser has stopped (cleanups run in reverse)
	ctx := chrometest.Start(t, chromium, profile)
	return &browser{t: t, ctx: ctx, base: base}
}

// do runs actions with a time limit, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %s: %v (at %s)", what, err, b.location())
	}
}

// open loads base+path (or a full URL) and waits for the load event.
func (b *browser) open(path string) {
	b.t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = b.base + path
	}
	b.do("open "+path, chromedp.Navigate(path))
}

// fill types the values into the inputs with these ids, as a person would.
func (b *browser) fill(fields ...string) {
	b.t.Helper()
	for i := 0; i+1 < len(fields); i += 2 {
		id, _ := json.Marshal(fields[i])
		b.do("fill #"+fields[i],
			chromedp.Evaluate[chromedp.Void](`document.getElementById(`+string(id)+`).value = ""`),
			chromedp.SendKeys(chromedp.CSS("#"+fields[i]), fields[i+1]))
	}
}

// click clicks the element and waits until the page it leads to has loaded
// (every form here posts and answers with a new page).
func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("mark page", chromedp.Evaluate[chromedp.Void](`window.__e2eOld = true`))
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
	b.waitNewPage("after clicking " + sel)
}

// waitNewPage waits until the page marked with window.__e2eOld has been
// replaced by a new one that has loaded. The check runs from Go, since a
// script polling in the page dies with the page it polls.
func (b *browser) waitNewPage(what string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`window.__e2eOld === undefined && document.readyState === "complete"`))
		cancel()
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: no new page %s in 20 s (at %s, last error %v)", what, b.location(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// submit clicks the submit button of the form that posts to action.
func (b *browser) submit(action string) {
	b.t.Helper()
	b.click(`form[action="` + action + `"] button[type="submit"]`)
}

// location is the current URL ("" when it cannot be read).
func (b *browser) location() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// at reports whether the current page is path (query ignored).
func (b *browser) at(path string) bool {
	u, err := url.Parse(b.location())
	return err == nil && u.Path == path
}

// expectAt fails the test unless the current page is path.
func (b *browser) expectAt(what, path string) {
	b.t.Helper()
	if !b.at(path) {
		b.t.Fatalf("%s: at %s, want %s\npage: %s", what, b.location(), path, tail(b.text("main"), 1500))
	}
}

// query returns the innerText of the first element matching the CSS selector,
// and whether there is one.
func (b *browser) query(sel string) (string, bool) {
	b.t.Helper()
	selJSON, _ := json.Marshal(sel)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	r, err := chromedp.Run(ctx, chromedp.Evaluate[[2]any](
		`(() => { const e = document.querySelector(`+string(selJSON)+`); return e ? [true, e.innerText] : [false, ""]; })()`))
	if err != nil {
		b.t.Fatalf("browser: query %s: %v", sel, err)
	}
	ok, _ := r[0].(bool)
	s, _ := r[1].(string)
	return strings.TrimSpace(s), ok
}

func (b *browser) text(sel string) string { s, _ := b.query(sel); return s }
func (b *browser) has(sel string) bool    { _, ok := b.query(sel); return ok }

// count is the number of elements matching the CSS selector.
func (b *browser) count(sel string) int {
	b.t.Helper()
	selJSON, _ := json.Marshal(sel)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+string(selJSON)+`).length`))
	if err != nil {
		b.t.Fatalf("browser: count %s: %v", sel, err)
	}
	return n
}

// eval runs a script that returns nothing.
func (b *browser) eval(what, script string) {
	b.t.Helper()
	b.do(what, chromedp.Evaluate[chromedp.Void](script))
}

// The member's journey.

const (
	memberName = "alice.e2e"
	vaddr      = memberName + "@id.localhost"
	oldEmail   = "Alice.E2E@example.org"
	newEmail   = "alice.new@example.net"
	pw1        = "first secret phrase"
	pw2        = "second secret phrase"
	pw3        = "third secret phrase"
)

// login logs the browser in through the login form and checks where it lands.
func (b *browser) login(login, password string) {
	b.t.Helper()
	b.open("/login")
	b.fill("login", login, "password", password)
	b.submit("/login")
	if b.at("/login") {
		b.t.Fatalf("browser login as %q refused: %s", login, b.text(".error-summary"))
	}
}

func (b *browser) logout() {
	b.t.Helper()
	b.open("/account")
	b.submit("/logout")
	b.expectAt("log out", "/login")
	b.open("/account")
	b.expectAt("/account after logging out", "/login")
}

func walkMember(t *testing.T, in *instance, b *browser) {
	// 1. Register, waiting past the form's minimum age.
	b.open("/register")
	formLoaded := time.Now()
	b.fill("username", memberName, "first_name", "Alice", "last_name", "Liddell",
		"email", oldEmail, "password", pw1, "password_confirm", pw1)
	time.Sleep(time.Until(formLoaded.Add(1200 * time.Millisecond)))
	b.submit("/register")
	b.expectAt("register", "/register/done")

	// 2. Until verified the account cannot log in; then the mailed link
	// verifies it, once.
	b.open("/login")
	b.fill("login", memberName, "password", pw1)
	b.submit("/login")
	b.expectAt("login before verifying", "/login")
	if !b.has(`a[href^="/verify/resend"]`) {
		t.Errorf("login before verifying: no link to ask for the mail again")
	}
	if newClient(t, in.URL, "e2e-unverified").login(memberName, pw1) {
		t.Fatalf("an unverified account logged in over HTTP")
	}
	verifyLink, verifyMail := waitLink(t, in.URL, oldEmail, "/verify", 0)
	b.open(verifyLink)
	b.submit("/verify")
	b.expectAt("verify email", "/login")
	b.open(verifyLink)
	if b.has(`form[action="/verify"] button[type="submit"]`) {
		b.submit("/verify")
	}
	if !b.has(".error-summary") {
		t.Errorf("a used verification link still works: %s", b.text("main"))
	}

	// 3. Log in by username, see the virtual address; log out; log in by
	// the verified email.
	b.login(memberName, pw1)
	b.open("/account")
	b.expectAt("account page", "/account")
	if got := b.text("#virtual-address"); got != vaddr {
		t.Errorf("account page shows virtual address %q, want %q", got, vaddr)
	}
	if got := b.text("#username"); got != memberName {
		t.Errorf("account page shows username %q, want %q", got, memberName)
	}
	b.logout()
	b.login(oldEmail, pw1)
	b.open("/account")
	b.expectAt("account page after login by email", "/account")

	// 4a. See another session and end it.
	other := newClient(t, in.URL, "e2e-second-session")
	if !other.login(strings.ToUpper(memberName), pw1) {
		t.Fatalf("second session: login refused")
	}
	b.open("/account")
	if n := b.count("main table tbody tr"); n != 2 {
		t.Errorf("account page lists %d sessions, want 2", n)
	}
	b.do("mark page", chromedp.Evaluate[chromedp.Void](`window.__e2eOld = true`))
	b.eval("end the second session", `[...document.querySelectorAll("main table tbody tr")]
		.find(r => r.innerText.includes("e2e-second-session"))
		.querySelector("button[type=submit]").click()`)
	b.waitNewPage("after ending a session")
	b.expectAt("end a session", "/account")
	if n := b.count("main table tbody tr"); n != 1 {
		t.Errorf("after ending the second session the page lists %d sessions, want 1", n)
	}
	if other.loggedIn() {
		t.Errorf("the ended session still reaches /account")
	}

	// 4b. Change the email: the current password is asked; the new address
	// takes effect only once verified; the old address is told.
	b.fill("email-new_email", newEmail, "email-current_password", "not my password")
	b.submit("/account/email")
	if !b.has("#email-current_password-error") {
		t.Errorf("change email with a wrong current password: no error at the password field")
	}
	lastOld := lastMailID(t, in.URL, oldEmail)
	b.fill("email-new_email", newEmail, "email-current_password", pw1)
	b.submit("/account/email")
	b.expectAt("change email", "/account")
	if got := b.text("#email"); !strings.EqualFold(got, oldEmail) {
		t.Errorf("before verification the account page shows email %q, want still %q", got, oldEmail)
	}
	if got := b.text("#pending-email"); !strings.Contains(got, newEmail) {
		t.Errorf("account page shows pending email %q, want %q", got, newEmail)
	}
	if newClient(t, in.URL, "e2e-new-email-early").login(newEmail, pw1) {
		t.Errorf("login with the new email worked before it was verified")
	}
	changeLink, _ := waitLink(t, in.URL, newEmail, "/verify", 0)
	b.open(changeLink)
	b.submit("/verify")
	b.expectAt("verify the new email", "/account")
	if got := b.text("#email"); got != newEmail {
		t.Errorf("after verification the account page shows email %q, want %q", got, newEmail)
	}
	if b.has("#pending-email") {
		t.Errorf("after verification a pending email is still shown: %s", b.text("#pending-email"))
	}
	if !newClient(t, in.URL, "e2e-new-email").login(newEmail, pw1) {
		t.Errorf("login with the verified new email refused")
	}
	if newClient(t, in.URL, "e2e-old-email").login(oldEmail, pw1) {
		t.Errorf("login with the old email still works after the change")
	}
	if ms := mailsTo(t, in.URL, oldEmail); len(ms) == 0 || ms[0].ID <= lastOld || ms[0].ID == verifyMail {
		t.Errorf("the old address was not told of the change; its mails:%s", describe(ms))
	}

	// 4c. Change the password: other sessions end, this one stays.
	other = newClient(t, in.URL, "e2e-third-session")
	if !other.login(memberName, pw1) {
		t.Fatalf("third session: login refused")
	}
	b.open("/account")
	b.fill("password-current_password", pw1, "password-new_password", pw2, "password-new_password_confirm", pw2)
	b.submit("/account/password")
	b.expectAt("change password", "/account")
	if other.loggedIn() {
		t.Errorf("another session survived the password change")
	}
	if newClient(t, in.URL, "e2e-old-pw").login(memberName, pw1) {
		t.Errorf("the old password still works after the change")
	}
	if !newClient(t, in.URL, "e2e-new-pw").login(memberName, pw2) {
		t.Errorf("the new password does not work")
	}
	b.open("/account")
	b.expectAt("own session after the password change", "/account")

	// 5. Forgotten password: the same page for an unknown user; the link
	// sets a new password, ends every session, and works only once.
	b.logout()
	other = newClient(t, in.URL, "e2e-fourth-session")
	if !other.login(memberName, pw2) {
		t.Fatalf("fourth session: login refused")
	}
	lastNew := lastMailID(t, in.URL, newEmail)
	b.open("/password/forgot")
	b.fill("login", "nobody-at-all")
	b.submit("/password/forgot")
	unknownPage := b.text("main")
	b.open("/password/forgot")
	b.fill("login", memberName)
	b.submit("/password/forgot")
	if knownPage := b.text("main"); knownPage != unknownPage || knownPage == "" {
		t.Errorf("forgot password answers differ:\nunknown user: %q\nmember:       %q", unknownPage, knownPage)
	}
	resetLink, _ := waitLink(t, in.URL, newEmail, "/password/reset", lastNew)
	b.open(resetLink)
	b.fill("password", pw3, "password_confirm", pw3)
	b.submit("/password/reset")
	b.expectAt("reset password", "/login")
	if other.loggedIn() {
		t.Errorf("a session survived the password reset")
	}
	b.open(resetLink)
	if b.has("#password") {
		b.fill("password", "fourth secret phrase", "password_confirm", "fourth secret phrase")
		b.submit("/password/reset")
	}
	if b.at("/login") || !b.has(".error-summary") {
		t.Errorf("a used reset link worked again (at %s)", b.location())
	}
	if newClient(t, in.URL, "e2e-pw2").login(memberName, pw2) {
		t.Errorf("the password before the reset still works")
	}
	b.login(memberName, pw3)

	// 6. Delete the account (the current password is asked); the username is
	// never given out again.
	b.open("/account")
	b.fill("delete-current_password", "not my password")
	b.eval("tick the confirmation", `document.querySelector("#delete-confirm").checked = true`)
	b.submit("/account/delete")
	if b.at("/") {
		t.Fatalf("the account was deleted with a wrong password")
	}
	if !b.has("#delete-current_password-error") {
		t.Errorf("delete with a wrong password: no error at the password field")
	}
	b.fill("delete-current_password", pw3)
	b.do("tick the confirmation", chromedp.Click(chromedp.CSS("#delete-confirm")))
	b.submit("/account/delete")
	b.expectAt("delete", "/")
	if newClient(t, in.URL, "e2e-deleted").login(memberName, pw3) {
		t.Errorf("a deleted account logged in")
	}
	b.open("/register")
	formLoaded = time.Now()
	b.fill("username", memberName, "first_name", "Other", "last_name", "Person",
		"email", "someone.else@example.org", "password", pw1, "password_confirm", pw1)
	time.Sleep(time.Until(formLoaded.Add(1200 * time.Millisecond)))
	b.submit("/register")
	if b.at("/register/done") || !b.has("#username-error") {
		t.Errorf("registering the deleted username again was not refused at the username field (at %s)", b.location())
	}
}
