package account

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/idbridge/idbridge/internal/store"
)

// A legacy {SSHA} hash (an LDAP import) is checked with one SHA-1; the check
// must still cost an argon2id, or the fast answer would tell who exists.
func TestLegacyHashCostsLikeUnknownUser(t *testing.T) {
	e := newEnv(t)
	a := e.register(t, "ada", "ada@example.org")
	// {SSHA} of "secret-legacy" with salt "salt": base64(sha1(pw+salt)+salt).
	const ssha = "{SSHA}XihZEfbf49NysIbS5IN7vKvaD5JzYWx0"
	if err := e.st.UpdateAccount(e.ctx, a.ID, func(x *store.Account) error {
		x.PasswordHash, x.EmailVerified = ssha, true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	inner := e.s.dummyVerify
	e.s.dummyVerify = func(pw string) { n.Add(1); inner(pw) }
	if _, err := e.s.Login(e.ctx, "ada", "wrong password", "192.0.2.1", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Fatalf("a wrong password against a legacy hash ran the argon2id dummy %d times, want 1", n.Load())
	}
	// The right legacy password logs in (and is upgraded to argon2id).
	got, err := e.s.Login(e.ctx, "ada", "secret-legacy", "192.0.2.1", "")
	if err != nil {
		t.Fatalf("legacy password: %v", err)
	}
	if got.PasswordHash == ssha {
		t.Error("the legacy hash was not upgraded at login")
	}
}

// IPv6 clients are counted by their /64: a subscriber's many addresses share
// one throttle.
func TestIPv6ThrottleBySlash64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
		{"not an ip", "not an ip"},
	} {
		if got := ipKeyPart(tc.ip); got != tc.want {
			t.Errorf("ipKeyPart(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
	e := newEnv(t)
	for i := range 5 {
		ip := "2001:db8:1:2::" + string(rune('a'+i))
		e.s.Login(e.ctx, "nobody", "x", ip, "")
	}
	if _, err := e.s.Login(e.ctx, "nobody", "x", "2001:db8:1:2::ffff", ""); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	c, _ := e.st.GetCounter(e.ctx, ipKey("2001:db8:1:2::1"))
	if c.Count != 5 {
		t.Errorf("the /64 counted %d failures, want 5 (the sixth was throttled)", c.Count)
	}
}
