package account

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/sqlite"
)

type sent struct {
	to, tmpl string
	data     map[string]string
}

type fakeMailer struct {
	mu   sync.Mutex
	mail []sent
}

func (f *fakeMailer) Send(_ context.Context, to, tmpl string, data map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mail = append(f.mail, sent{to, tmpl, data})
	return nil
}

// last returns the newest mail of template tmpl to address to.
func (f *fakeMailer) last(t *testing.T, to, tmpl string) sent {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.mail) - 1; i >= 0; i-- {
		if f.mail[i].to == to && f.mail[i].tmpl == tmpl {
			return f.mail[i]
		}
	}
	t.Fatalf("no %s mail to %s in %v", tmpl, to, f.mail)
	return sent{}
}

func (f *fakeMailer) count(to, tmpl string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.mail {
		if m.to == to && m.tmpl == tmpl {
			n++
		}
	}
	return n
}

// token extracts the token of a mailed link.
func token(t *testing.T, m sent) string {
	t.Helper()
	u, err := url.Parse(m.data["url"])
	if err != nil || u.Query().Get("token") == "" {
		t.Fatalf("no token in %q", m.data["url"])
	}
	return u.Query().Get("token")
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	s     *Service
	st    store.Store
	mail  *fakeMailer
	clock *clock
	ctx   context.Context
}

var lowArgon = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir()+"/db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := Config{
		BaseURL: "https://id.example.org", VirtualDomain: "id.example.org",
		Reserved: []string{"Board"}, Argon2: lowArgon,
		Throttle: ThrottleConfig{MaxFailures: 5, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, ResetAfter: 12 * time.Hour},
	}
	for _, f := range mod {
		f(&cfg)
	}
	m := &fakeMailer{}
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := New(st, m, cfg, nil, nil)
	s.SetClock(c.now)
	return &env{s: s, st: st, mail: m, clock: c, ctx: ctx}
}

const goodPW = "correct horse battery"

// register registers and verifies an account.
func (e *env) register(t *testing.T, username, email string) store.Account {
	t.Helper()
	err := e.s.Register(e.ctx, RegisterInput{Username: username, FirstName: "Ada", LastName: "Lovelace", Email: email, Password: goodPW, IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("register %s: %v", username, err)
	}
	a, err := e.s.VerifyEmail(e.ctx, token(t, e.mail.last(t, email, "verify_email")), "192.0.2.1")
	if err != nil {
		t.Fatalf("verify %s: %v", username, err)
	}
	return a
}

func codes(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var c []string
	for _, f := range ve.Fields {
		c = append(c, f.Code)
	}
	return c
}

func TestUsernameGrammar(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"ada", true}, {"ada.lovelace", true}, {"a-b_c.d9", true}, {"abc", true},
		{strings.Repeat("a", 32), true}, {strings.Repeat("a", 33), false},
		{"ab", false}, {"1abc", false}, {"_abc", false}, {".abc", false},
		{"ab..c", false}, {"abc.", false}, {"ab c", false}, {"ab@c", false},
		{"abç", false}, {"ab+c", false}, {"", false}, {"Ada", false}, // ValidUsername wants lowercase
	}
	for _, tt := range tests {
		if got := ValidUsername(tt.in); got != tt.ok {
			t.Errorf("ValidUsername(%q) = %v", tt.in, got)
		}
	}
}

func TestEmailGrammar(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ in, code string }{
		{"ada@example.org", ""}, {"Ada.Lovelace+x@Example.ORG", ""}, {"a@b.co", ""},
		{"ada", "email.invalid"}, {"ada@localhost", "email.invalid"}, {"Ada <ada@example.org>", "email.invalid"},
		{"\"a b\"@example.org", "email.invalid"}, {"ada@[127.0.0.1]", "email.invalid"}, {"ada@1.2.3.4", "email.invalid"},
		{"ada..x@example.org", "email.invalid"}, {"ada@-x.org", "email.invalid"}, {"ada@example.org\n", "email.invalid"},
		{"ada@id.example.org", "email.virtual_domain"}, {"ada@ID.Example.org", "email.virtual_domain"},
		{"ada@lists.id.example.org", "email.virtual_domain"}, {"ada@notid.example.org", ""},
	}
	for _, tt := range tests {
		if got := e.s.emailCode(tt.in); got != tt.code {
			t.Errorf("emailCode(%q) = %q, want %q", tt.in, got, tt.code)
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newEnv(t)
	e.register(t, "taken", "taken@example.org")
	tests := []struct {
		name string
		in   RegisterInput
		want []string
	}{
		{"reserved builtin", RegisterInput{Username: "Postmaster"}, []string{"username.reserved"}},
		{"reserved mailer-daemon", RegisterInput{Username: "mailer-daemon"}, []string{"username.reserved"}},
		{"reserved configured", RegisterInput{Username: "board"}, []string{"username.reserved"}},
		{"invalid", RegisterInput{Username: "9lives"}, []string{"username.invalid"}},
		{"taken, other case", RegisterInput{Username: "TAKEN"}, []string{"username.taken"}},
		{"short password", RegisterInput{Password: "short"}, []string{"password.too_short"}},
		{"common password", RegisterInput{Password: "Password123"}, []string{"password.common"}},
		{"password is username", RegisterInput{Username: "grace.hopper", Password: "Grace.Hopper"}, []string{"password.common"}},
		{"names", RegisterInput{FirstName: " ", LastName: strings.Repeat("x", 101)}, []string{"name.required", "name.too_long"}},
		{"virtual domain", RegisterInput{Email: "x@id.example.org"}, []string{"email.virtual_domain"}},
	}
	for _, tt := range tests {
		in := RegisterInput{Username: "grace", FirstName: "Grace", LastName: "Hopper", Email: "grace@example.org", Password: goodPW}
		if tt.in.Username != "" {
			in.Username = tt.in.Username
		}
		if tt.in.Password != "" {
			in.Password = tt.in.Password
		}
		if tt.in.FirstName != "" {
			in.FirstName, in.LastName = tt.in.FirstName, tt.in.LastName
		}
		if tt.in.Email != "" {
			in.Email = tt.in.Email
		}
		err := e.s.Register(e.ctx, in)
		if got := codes(err); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: codes %v (err %v), want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestUnverifiedCannotLogIn(t *testing.T) {
	e := newEnv(t)
	if err := e.s.Register(e.ctx, RegisterInput{Username: "Ada", FirstName: "Ada", LastName: "L", Email: "ada@example.org", Password: goodPW}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Login(e.ctx, "ada", "wrong password", "192.0.2.1", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := e.s.Login(e.ctx, "ADA", goodPW, "192.0.2.1", ""); !errors.Is(err, ErrNotVerified) {
		t.Fatalf("unverified: %v", err)
	}
	first := token(t, e.mail.last(t, "ada@example.org", "verify_email"))
	if err := e.s.ResendVerification(e.ctx, "ada@example.org", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if n := e.mail.count("ada@example.org", "verify_email"); n != 2 {
		t.Fatalf("%d verification mails", n)
	}
	if err := e.s.ResendVerification(e.ctx, "nobody@example.org", ""); err != nil {
		t.Fatal(err)
	}
	a, err := e.s.VerifyEmail(e.ctx, first, "")
	if err != nil || !a.EmailVerified {
		t.Fatalf("verify: %+v %v", a, err)
	}
	if _, err := e.s.VerifyEmail(e.ctx, first, ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token reuse: %v", err)
	}
	for _, login := range []string{"ada", "Ada", "ADA@Example.org"} {
		if _, err := e.s.Login(e.ctx, login, goodPW, "192.0.2.1", ""); err != nil {
			t.Fatalf("login %s: %v", login, err)
		}
	}
}

func TestRegisterTakenEmail(t *testing.T) {
	e := newEnv(t)
	owner := e.register(t, "ada", "Ada@Example.org")
	err := e.s.Register(e.ctx, RegisterInput{Username: "mallory", FirstName: "M", LastName: "X", Email: "ada@EXAMPLE.org", Password: goodPW})
	if err != nil {
		t.Fatalf("taken email must look like success: %v", err)
	}
	n := e.mail.last(t, "ada@EXAMPLE.org", "email_taken")
	if n.data["username"] != "ada" {
		t.Errorf("notice data %v", n.data)
	}
	if e.mail.count("ada@EXAMPLE.org", "verify_email") != 0 {
		t.Error("a verification link went to a taken address")
	}
	if _, err := e.st.GetAccountByUsername(e.ctx, "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("account created for a taken address: %v", err)
	}
	// Two unverified registrations may name one address; the first verified wins.
	for _, u := range []string{"bob1", "bob2"} {
		if err := e.s.Register(e.ctx, RegisterInput{Username: u, FirstName: "B", LastName: "X", Email: "Bob@example.org", Password: goodPW}); err != nil {
			t.Fatal(err)
		}
	}
	e.mail.mu.Lock()
	var toks []string
	for _, m := range e.mail.mail {
		if m.tmpl == "verify_email" && m.to == "Bob@example.org" {
			toks = append(toks, token(t, m))
		}
	}
	e.mail.mu.Unlock()
	if _, err := e.s.VerifyEmail(e.ctx, toks[1], ""); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.VerifyEmail(e.ctx, toks[0], "")
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, ErrEmailInUse) {
		t.Fatalf("second verification of one address: %v", err)
	}
	// The owner's account is untouched by all of this.
	if a, err := e.st.GetAccount(e.ctx, owner.ID); err != nil || !strings.EqualFold(a.Email, owner.Email) || !a.EmailVerified {
		t.Errorf("the owner's account changed: %+v, %v", a, err)
	}
}

func TestUnverifiedExpiryFreesUsername(t *testing.T) {
	e := newEnv(t)
	in := RegisterInput{Username: "ada", FirstName: "Ada", LastName: "L", Email: "ada@example.org", Password: goodPW}
	if err := e.s.Register(e.ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Register(e.ctx, in); fmt.Sprint(codes(err)) != "[username.taken]" {
		t.Fatalf("pending registration must hold the username: %v", err)
	}
	e.clock.add(47 * time.Hour)
	if err := e.s.Maintain(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Register(e.ctx, in); fmt.Sprint(codes(err)) != "[username.taken]" {
		t.Fatalf("before expiry: %v", err)
	}
	e.clock.add(2 * time.Hour)
	if err := e.s.Maintain(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Register(e.ctx, in); err != nil {
		t.Fatalf("after expiry the username is free: %v", err)
	}
}

func TestLoginUnknownUserUsesDummy(t *testing.T) {
	e := newEnv(t)
	e.register(t, "ada", "ada@example.org")
	var n atomic.Int32
	inner := e.s.dummyVerify
	e.s.dummyVerify = func(pw string) { n.Add(1); inner(pw) }
	for _, login := range []string{"nobody", "nobody@example.org", ""} {
		if _, err := e.s.Login(e.ctx, login, goodPW, "192.0.2.1", ""); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("%q: %v", login, err)
		}
	}
	if n.Load() != 3 {
		t.Fatalf("dummy verify ran %d times for 3 unknown users", n.Load())
	}
	if _, err := e.s.Login(e.ctx, "ada", "wrong password", "192.0.2.1", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if n.Load() != 3 {
		t.Fatal("dummy verify ran for a known user")
	}
}

func TestThrottleConcurrent(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	got, err := e.s.Login(e.ctx, "ada", goodPW, "198.51.100.1", "browser")
	if err != nil {
		t.Fatal(err)
	}
	cookie, _, err := e.s.StartSession(e.ctx, got, "198.51.100.1", "browser")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			ip := fmt.Sprintf("203.0.113.%d", i) // many IPs: only the account counter throttles
			if _, err := e.s.Login(e.ctx, "ada", "wrong password", ip, ""); !errors.Is(err, ErrInvalidCredentials) {
				t.Errorf("attempt %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	c, err := e.st.GetCounter(e.ctx, acctKey(a.ID))
	if err != nil {
		t.Fatal(err)
	}
	// The decision and the count are one atomic step: of 40 concurrent
	// guesses exactly MaxFailures (5) get their password checked.
	if c.Count != 5 {
		t.Fatalf("counter %d after 40 concurrent failures: %d guesses were checked, want exactly 5", c.Count, c.Count)
	}
	// Waiting now: the right password is refused with the same error.
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "198.51.100.7", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("right password while throttled: %v", err)
	}
	// The existing session is untouched.
	if _, acc, err := e.s.Session(e.ctx, cookie); err != nil || acc.ID != a.ID {
		t.Fatalf("session while throttled: %v", err)
	}
	// The wait is WaitIncrement * (count / MaxFailures), at most MaxWait.
	wait := min(time.Duration(c.Count/5)*time.Minute, 15*time.Minute)
	e.clock.add(wait - time.Second)
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "198.51.100.7", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("right password before the wait ends: %v", err)
	}
	e.clock.add(2 * time.Second)
	// Session still fine (idle timeout is 30 min).
	if _, _, err := e.s.Session(e.ctx, cookie); err != nil {
		t.Fatalf("session: %v", err)
	}
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "198.51.100.7", ""); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	if c, _ := e.st.GetCounter(e.ctx, acctKey(a.ID)); c.Count != 0 {
		t.Errorf("success left the account counter at %d", c.Count)
	}
	// Every checked (not throttled) attempt counted once for its IP too.
	ipSum := 0
	for i := range 40 {
		ic, _ := e.st.GetCounter(e.ctx, ipKey(fmt.Sprintf("203.0.113.%d", i)))
		ipSum += ic.Count
	}
	if ipSum != c.Count {
		t.Errorf("ip counters add up to %d, account counter was %d", ipSum, c.Count)
	}
	ev, err := e.s.Audit(e.ctx, store.AuditFilter{Type: "login.throttled"})
	if err != nil || len(ev) == 0 {
		t.Errorf("no login.throttled audit event: %v", err)
	}
}

func TestThrottlePerIP(t *testing.T) {
	e := newEnv(t)
	e.register(t, "ada", "ada@example.org")
	for i := range 5 {
		e.s.Login(e.ctx, fmt.Sprintf("nobody%d", i), "x", "203.0.113.9", "")
	}
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "203.0.113.9", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("throttled IP: %v", err)
	}
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "203.0.113.10", ""); err != nil {
		t.Fatalf("other IP: %v", err)
	}
	// Registration and reset throttles per IP.
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = e.s.RequestReset(e.ctx, "ada", "203.0.113.20")
	}
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("reset throttle: %v", err)
	}
	err = nil
	for i := 0; i < 10 && !errors.Is(err, ErrThrottled); i++ {
		err = e.s.Register(e.ctx, RegisterInput{Username: "x", IP: "203.0.113.21"})
	}
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("register throttle: %v", err)
	}
}

func TestSessions(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	c1, s1, err := e.s.StartSession(e.ctx, a, "192.0.2.1", "ua")
	if err != nil {
		t.Fatal(err)
	}
	if len(c1) != 43 || s1.ID != SessionID(c1) || len(s1.ID) != 64 || strings.Contains(s1.ID, c1) {
		t.Fatalf("cookie %q id %q", c1, s1.ID)
	}
	c2, _, _ := e.s.StartSession(e.ctx, a, "192.0.2.1", "ua")
	if c1 == c2 {
		t.Fatal("two sessions share a cookie")
	}
	// Idle timeout: touched by use, ends after 30 min without.
	for range 4 {
		e.clock.add(20 * time.Minute)
		if _, _, err := e.s.Session(e.ctx, c1); err != nil {
			t.Fatalf("active session: %v", err)
		}
	}
	if _, _, err := e.s.Session(e.ctx, c2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("idle session: %v", err)
	}
	// Absolute lifetime: 10 h even when active.
	for e.clock.now().Before(s1.ExpiresAt.Add(-20 * time.Minute)) {
		e.clock.add(20 * time.Minute)
		if _, _, err := e.s.Session(e.ctx, c1); err != nil {
			t.Fatalf("session before its lifetime: %v", err)
		}
	}
	e.clock.add(20 * time.Minute)
	if _, _, err := e.s.Session(e.ctx, c1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session past its lifetime: %v", err)
	}
	// EndSession only for the account's own sessions.
	b := e.register(t, "bob", "bob@example.org")
	c3, s3, _ := e.s.StartSession(e.ctx, b, "", "")
	if err := e.s.EndSession(e.ctx, a.ID, s3.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ending another's session: %v", err)
	}
	if err := e.s.EndSession(e.ctx, b.ID, s3.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, c3); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	c4, _, _ := e.s.StartSession(e.ctx, b, "", "")
	if err := e.s.Logout(e.ctx, c4); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, c4); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
}

func TestResetPassword(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	c1, _, _ := e.s.StartSession(e.ctx, a, "", "")
	if err := e.s.RequestReset(e.ctx, "nobody", "192.0.2.1"); err != nil {
		t.Fatalf("unknown account: %v", err)
	}
	if err := e.s.RequestReset(e.ctx, "ADA@example.org", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	tok := token(t, e.mail.last(t, "ada@example.org", "reset_password"))
	if err := e.s.RequestReset(e.ctx, "ada", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	tok2 := token(t, e.mail.last(t, "ada@example.org", "reset_password"))
	if _, err := e.s.ResetPassword(e.ctx, tok, "123456789", ""); fmt.Sprint(codes(err)) != "[password.common]" {
		t.Fatalf("weak password: %v", err)
	}
	const newPW = "a whole new password"
	if _, err := e.s.ResetPassword(e.ctx, tok, newPW, ""); err != nil {
		t.Fatalf("reset (the refused password left the link valid): %v", err)
	}
	if _, err := e.s.ResetPassword(e.ctx, tok, newPW+"2", ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("reuse: %v", err)
	}
	if _, err := e.s.ResetPassword(e.ctx, tok2, newPW+"2", ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("older link after a reset: %v", err)
	}
	if _, _, err := e.s.Session(e.ctx, c1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session survived a reset: %v", err)
	}
	if _, err := e.s.Login(e.ctx, "ada", newPW, "", ""); err != nil {
		t.Fatal(err)
	}
	e.mail.last(t, "ada@example.org", "password_changed")
	// Expiry: 1 h.
	e.s.RequestReset(e.ctx, "ada", "192.0.2.1")
	tok3 := token(t, e.mail.last(t, "ada@example.org", "reset_password"))
	e.clock.add(61 * time.Minute)
	if _, err := e.s.ResetPassword(e.ctx, tok3, "yet another password", ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := e.s.ResetPassword(e.ctx, "bogus", "yet another password", ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatal(err)
	}
}

func TestChangePassword(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	keep, ks, _ := e.s.StartSession(e.ctx, a, "", "")
	other, _, _ := e.s.StartSession(e.ctx, a, "", "")
	if err := e.s.ChangePassword(e.ctx, a.ID, "wrong", "another good one", ks.ID, ""); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if err := e.s.ChangePassword(e.ctx, a.ID, goodPW, "short", ks.ID, ""); fmt.Sprint(codes(err)) != "[password.too_short]" {
		t.Fatal(err)
	}
	if err := e.s.ChangePassword(e.ctx, a.ID, goodPW, "another good one", ks.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, keep); err != nil {
		t.Fatalf("kept session: %v", err)
	}
	if _, _, err := e.s.Session(e.ctx, other); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other session: %v", err)
	}
	if _, err := e.s.Login(e.ctx, "ada", "another good one", "", ""); err != nil {
		t.Fatal(err)
	}
}

func TestChangeEmail(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	e.register(t, "bob", "bob@example.org")
	if err := e.s.ChangeEmail(e.ctx, a.ID, "wrong", "new@example.org", ""); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if err := e.s.ChangeEmail(e.ctx, a.ID, goodPW, "ada@id.example.org", ""); fmt.Sprint(codes(err)) != "[email.virtual_domain]" {
		t.Fatal(err)
	}
	if err := e.s.ChangeEmail(e.ctx, a.ID, goodPW, "New@example.org", ""); err != nil {
		t.Fatal(err)
	}
	tok := token(t, e.mail.last(t, "New@example.org", "change_email_verify"))
	e.mail.last(t, "ada@example.org", "email_changed_notice")
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if got.Email != "ada@example.org" || got.PendingEmail != "New@example.org" {
		t.Fatalf("before verification: %+v", got)
	}
	if _, err := e.s.Login(e.ctx, "new@example.org", goodPW, "", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal("pending address usable for login")
	}
	got, err := e.s.VerifyEmail(e.ctx, tok, "")
	if err != nil || got.Email != "New@example.org" || got.PendingEmail != "" || !got.EmailVerified {
		t.Fatalf("after verification: %+v %v", got, err)
	}
	if _, err := e.s.Login(e.ctx, "NEW@example.org", goodPW, "", ""); err != nil {
		t.Fatal(err)
	}
	// A change to bob's address looks the same; bob is told, nothing changes.
	if err := e.s.ChangeEmail(e.ctx, a.ID, goodPW, "BOB@example.org", ""); err != nil {
		t.Fatal(err)
	}
	e.mail.last(t, "BOB@example.org", "email_taken")
	if e.mail.count("BOB@example.org", "change_email_verify") != 0 {
		t.Fatal("link mailed to a taken address")
	}
	// A later change supersedes an earlier link.
	e.s.ChangeEmail(e.ctx, a.ID, goodPW, "one@example.org", "")
	t1 := token(t, e.mail.last(t, "one@example.org", "change_email_verify"))
	e.s.ChangeEmail(e.ctx, a.ID, goodPW, "two@example.org", "")
	if _, err := e.s.VerifyEmail(e.ctx, t1, ""); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("superseded link: %v", err)
	}
}

func TestDeleteKeepsUsername(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	c, _, _ := e.s.StartSession(e.ctx, a, "", "")
	if err := e.s.Delete(e.ctx, a.ID, "wrong", ""); !errors.Is(err, ErrWrongPassword) {
		t.Fatal(err)
	}
	if err := e.s.Delete(e.ctx, a.ID, goodPW, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("session survived deletion")
	}
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	e.clock.add(365 * 24 * time.Hour)
	if err := e.s.Maintain(e.ctx); err != nil {
		t.Fatal(err)
	}
	err := e.s.Register(e.ctx, RegisterInput{Username: "Ada", FirstName: "A", LastName: "B", Email: "ada@example.org", Password: goodPW})
	if fmt.Sprint(codes(err)) != "[username.taken]" {
		t.Fatalf("deleted username reissued: %v", err)
	}
	// The address is free again.
	e.register(t, "ada2", "ada@example.org")
	ev, _ := e.s.Audit(e.ctx, store.AuditFilter{Type: "account.delete"})
	if len(ev) != 1 {
		t.Errorf("audit: %v", ev)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	c, _, _ := e.s.StartSession(e.ctx, a, "", "")
	if err := e.s.Lock(e.ctx, "ADA", "admin:root"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("session survived a lock")
	}
	_, errLocked := e.s.Login(e.ctx, "ada", goodPW, "", "")
	_, errWrong := e.s.Login(e.ctx, "ada", "wrong", "", "")
	_, errUnknown := e.s.Login(e.ctx, "nobody", "wrong", "", "")
	if !errors.Is(errLocked, ErrInvalidCredentials) || errLocked.Error() != errWrong.Error() || errWrong.Error() != errUnknown.Error() {
		t.Fatalf("messages differ: %v / %v / %v", errLocked, errWrong, errUnknown)
	}
	if err := e.s.RequestReset(e.ctx, "ada", ""); err != nil || e.mail.count("ada@example.org", "reset_password") != 0 {
		t.Fatalf("reset for a locked account: %v", err)
	}
	if err := e.s.Unlock(e.ctx, "ada", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Login(e.ctx, "ada", goodPW, "", ""); err != nil {
		t.Fatal(err)
	}
	ev, _ := e.s.Audit(e.ctx, store.AuditFilter{Username: "ada", Type: "admin.lock"})
	if len(ev) != 1 || ev[0].Actor != "admin:root" {
		t.Errorf("audit: %+v", ev)
	}
}

func TestAdmin(t *testing.T) {
	e := newEnv(t)
	a, err := e.s.Create(e.ctx, CreateInput{Username: "Root2", FirstName: "R", LastName: "T", Email: "r@example.org", Password: goodPW, Admin: true}, "cli")
	if err != nil || !a.EmailVerified || a.Username != "root2" {
		t.Fatalf("%+v %v", a, err)
	}
	if ok, err := e.s.IsAdmin(e.ctx, a.ID); !ok || err != nil {
		t.Fatal("not admin")
	}
	if _, err := e.s.Create(e.ctx, CreateInput{Username: "other", FirstName: "R", LastName: "T", Email: "R@example.org", Password: goodPW}, "cli"); fmt.Sprint(codes(err)) != "[email.taken]" {
		t.Fatalf("admin create with a taken email: %v", err)
	}
	if err := e.s.SetGroup(e.ctx, "root2", "admins", false, "cli"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.s.IsAdmin(e.ctx, a.ID); ok {
		t.Fatal("still admin")
	}
	c, _, _ := e.s.StartSession(e.ctx, a, "", "")
	if err := e.s.SetPassword(e.ctx, "root2", "brand new password", "cli"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Session(e.ctx, c); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("session survived set-password")
	}
	u, err := e.s.Create(e.ctx, CreateInput{Username: "newbie", FirstName: "N", LastName: "B", Email: "n@example.org", Password: goodPW, Unverified: true}, "cli")
	if err != nil || u.EmailVerified {
		t.Fatal(err)
	}
	e.mail.last(t, "n@example.org", "verify_email")
	if err := e.s.AdminDelete(e.ctx, "newbie", "cli"); err != nil {
		t.Fatal(err)
	}
	got, _, err := e.s.Get(e.ctx, "newbie")
	if err != nil || !got.Deleted {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestRehashOnLogin(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	e2 := &env{s: New(e.st, e.mail, Config{VirtualDomain: "id.example.org", Argon2: password.Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1}}, nil, nil), st: e.st, ctx: e.ctx}
	if _, err := e2.s.Login(e.ctx, "ada", goodPW, "", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := e.st.GetAccount(e.ctx, a.ID)
	if !strings.Contains(got.PasswordHash, "m=128,") {
		t.Fatalf("not rehashed: %s", got.PasswordHash)
	}
}
