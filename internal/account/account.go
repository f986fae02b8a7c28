// Package account keeps idbridge's account rules, without HTTP: registration,
// email verification, password login with its brute-force throttle, sessions,
// password reset and change, email change, deletion, and the administrator's
// actions. Every state change goes through the store, so that several
// idbridge nodes agree, and leaves an audit event.
package account

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
)

// Config holds the account rules' settings. Zero durations and counts take
// the defaults named in their comments.
type Config struct {
	BaseURL, VirtualDomain        string
	Reserved                      []string      // extra reserved usernames (the built-in list is always reserved)
	UnverifiedTTL                 time.Duration // 48h
	VerifyTTL, ResetTTL           time.Duration // 48h, 1h
	PasswordMinLength             int           // 8
	Argon2                        password.Params
	Throttle                      ThrottleConfig // MaxFailures 30, WaitIncrement 1m, MaxWait 15m, ResetAfter 12h
	IdleTimeout, AbsoluteLifetime time.Duration  // 30m, 10h
}

// ThrottleConfig is the brute-force throttle, with Keycloak's semantics: after
// every MaxFailures failures the wait grows by WaitIncrement, up to MaxWait;
// counters restart ResetAfter after their first failure. The same limits
// apply per IP to registration and reset requests.
type ThrottleConfig struct {
	MaxFailures            int
	WaitIncrement, MaxWait time.Duration
	ResetAfter             time.Duration
}

// Mailer is what account needs from internal/mailout.
type Mailer interface {
	// Send renders template tmpl (verify_email, reset_password, email_taken, change_email_verify,
	// email_changed_notice, password_changed) with data and queues it for to. A per-address
	// rate limit may drop it (returns nil, logged): callers never tell the member.
	Send(ctx context.Context, to, tmpl string, data map[string]string) error
}

// Sentinel errors; compare with errors.Is.
var (
	// ErrInvalidCredentials is the one answer for an unknown user, a wrong
	// password, a locked account and a throttled attempt.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrNotVerified comes only after a correct password.
	ErrNotVerified = errors.New("verify your email address first")
	// ErrInvalidToken: unknown, used or expired token.
	ErrInvalidToken = errors.New("this link is invalid or has expired")
	// ErrWrongPassword: the current password given to confirm a change is wrong.
	ErrWrongPassword = errors.New("the current password is wrong")
	// ErrThrottled: too many registrations or reset requests from this address.
	ErrThrottled = errors.New("too many attempts, try again later")
	// ErrEmailInUse: a verification link for an address that another account
	// verified in the meantime. It wraps ErrInvalidToken.
	ErrEmailInUse = errorWrap{msg: "this email address now belongs to another account", err: ErrInvalidToken}
)

type errorWrap struct {
	msg string
	err error
}

func (e errorWrap) Error() string { return e.msg }
func (e errorWrap) Unwrap() error { return e.err }

// FieldError is one invalid form field. Code is a message-catalogue key such
// as "username.taken".
type FieldError struct{ Field, Code string }

// ValidationError lists the invalid fields of one request.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	codes := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		codes[i] = f.Code
	}
	return "invalid input: " + strings.Join(codes, ", ")
}

// Has reports whether the error lists code.
func (e *ValidationError) Has(code string) bool {
	for _, f := range e.Fields {
		if f.Code == code {
			return true
		}
	}
	return false
}

func (e *ValidationError) add(field, code string) {
	e.Fields = append(e.Fields, FieldError{field, code})
}

func (e *ValidationError) orNil() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

// Service applies the account rules. It is safe for concurrent use.
type Service struct {
	st   store.Store
	mail Mailer
	cfg  Config
	log  *slog.Logger
	met  *metrics.Metrics

	reserved map[string]bool

	clockMu sync.RWMutex
	clock   func() time.Time

	// dummyVerify is called for unknown users (a hook so tests can count it).
	dummyVerify func(pw string)
}

// New returns a Service. log and met may be nil.
func New(st store.Store, m Mailer, cfg Config, log *slog.Logger, met *metrics.Metrics) *Service {
	cfg = withDefaults(cfg)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if met == nil {
		met = metrics.New()
	}
	s := &Service{st: st, mail: m, cfg: cfg, log: log, met: met, clock: time.Now}
	s.reserved = make(map[string]bool)
	for _, r := range builtinReserved {
		s.reserved[r] = true
	}
	for _, r := range cfg.Reserved {
		s.reserved[strings.ToLower(strings.TrimSpace(r))] = true
	}
	dummy := password.DummyHash(cfg.Argon2)
	s.dummyVerify = func(pw string) { _, _, _ = cfg.Argon2.Verify(pw, dummy) }
	return s
}

func withDefaults(c Config) Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.UnverifiedTTL, 48*time.Hour)
	def(&c.VerifyTTL, 48*time.Hour)
	def(&c.ResetTTL, time.Hour)
	def(&c.IdleTimeout, 30*time.Minute)
	def(&c.AbsoluteLifetime, 10*time.Hour)
	def(&c.Throttle.WaitIncrement, time.Minute)
	def(&c.Throttle.MaxWait, 15*time.Minute)
	def(&c.Throttle.ResetAfter, 12*time.Hour)
	if c.Throttle.MaxFailures <= 0 {
		c.Throttle.MaxFailures = 30
	}
	if c.PasswordMinLength <= 0 {
		c.PasswordMinLength = 8
	}
	if c.Argon2 == (password.Params{}) {
		c.Argon2 = password.Default
	}
	c.VirtualDomain = strings.ToLower(strings.TrimSuffix(c.VirtualDomain, "."))
	c.BaseURL = strings.TrimSuffix(c.BaseURL, "/")
	return c
}

// SetClock replaces the clock (tests).
func (s *Service) SetClock(now func() time.Time) {
	s.clockMu.Lock()
	s.clock = now
	s.clockMu.Unlock()
}

func (s *Service) now() time.Time {
	s.clockMu.RLock()
	defer s.clockMu.RUnlock()
	return s.clock().UTC()
}

// VirtualAddress returns the account's address on the virtual domain.
func (s *Service) VirtualAddress(a store.Account) string {
	return a.Username + "@" + s.cfg.VirtualDomain
}
