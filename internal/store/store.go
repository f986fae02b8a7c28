// Package store declares idbridge's storage interface, its types and its sentinel
// errors. Every piece of state that several idbridge nodes must agree on lives
// behind this interface: accounts, groups, sessions, one-time tokens, throttle
// counters, replay caches and pending protocol requests, signing keys and
// secrets, the outgoing mail queue and the audit trail.
//
// Two backends implement it: store/sqlite (embedded, the default) and
// store/postgres (several nodes). store/storetest is the one conformance suite
// both must pass. Uniqueness rules (username, verified email) are enforced by
// database constraints, not only in Go, so that two nodes cannot race past them.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrEmailTaken: the email is already the verified email of another account.
	ErrEmailTaken = errors.New("email already in use")
)

// Account is one member. Username and ID never change and are never reused:
// deleting an account keeps a tombstone (Deleted set, personal data scrubbed).
type Account struct {
	ID            string // stable opaque id (OIDC sub, Atlassian claims/name)
	Username      string // lowercase
	FirstName     string
	LastName      string
	Email         string // the real email, as entered
	EmailVerified bool
	PendingEmail  string // a new email waiting for verification, or ""
	PasswordHash  string // PHC string, "" when the account has no password
	Locked        bool   // an administrator locked it
	Deleted       bool   // a tombstone: username and id stay reserved forever
	CreatedAt     time.Time
	UpdatedAt     time.Time
	LastLoginAt   time.Time // zero if never
}

// AccountFilter selects accounts for ListAccounts. Zero values match everything.
type AccountFilter struct {
	Query          string // substring of username, email, first or last name (case-insensitive)
	Group          string
	IncludeDeleted bool
	Limit          int // 0: no limit
	Offset         int
}

// Session is a logged-in browser. ID is the SHA-256 (hex) of the cookie value:
// the cookie value itself is never stored.
type Session struct {
	ID           string
	AccountID    string
	CreatedAt    time.Time
	LastSeenAt   time.Time
	ExpiresAt    time.Time // absolute lifetime end
	AuthnAt      time.Time // when the password was last checked in this session
	IP           string
	UserAgent    string
	Participants []Participant // services that got an SSO assertion (single logout)
}

// Participant is one service provider that got an assertion in a session.
type Participant struct {
	Protocol     string // "saml", "oidc", "discourse"
	Client       string // SP name / client id
	NameID       string
	NameIDFormat string
	SessionIndex string
}

// Token kinds.
const (
	TokenVerifyEmail   = "verify_email"
	TokenResetPassword = "reset_password"
	TokenChangeEmail   = "change_email"
)

// Token is a one-time token mailed to a member. Hash is the SHA-256 (hex) of the
// secret in the link; the secret itself is never stored.
type Token struct {
	Hash      string
	Kind      string
	AccountID string
	Email     string // the address the token was sent to
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Counter is a throttle or rate-limit counter, shared by every node.
type Counter struct {
	Key         string
	Count       int
	WindowStart time.Time // first hit in the current window
	LastHit     time.Time
}

// AuditEvent is one security-relevant event.
type AuditEvent struct {
	ID        int64
	Time      time.Time
	Type      string // e.g. "login.success", "login.failure", "password.change"
	AccountID string
	Username  string
	IP        string
	Actor     string // who did it when it was not the member: "admin:<name>", "cli"
	Detail    string
}

// AuditFilter selects audit events, newest first.
type AuditFilter struct {
	Username string
	Since    time.Time
	Type     string
	Limit    int
}

// Key states for signing keys (rollover: next → active → retired → deleted).
const (
	KeyNext    = "next"    // published, not yet signing
	KeyActive  = "active"  // signs; exactly one per purpose
	KeyRetired = "retired" // still published for a while, no longer signing
)

// SigningKey is a private key with its certificate, kept in the store so every
// node signs alike.
type SigningKey struct {
	ID        string
	Purpose   string // "saml", "oidc", "dkim"
	State     string
	KeyPEM    []byte
	CertPEM   []byte // may be empty (dkim)
	CreatedAt time.Time
}

// OutMail is a message idbridge itself writes (verification, reset, notices),
// queued in the store until a node hands it to the smarthost.
type OutMail struct {
	ID          int64
	From        string
	To          string
	Data        []byte // the whole RFC 5322 message
	Attempts    int
	NextAttempt time.Time
	LastError   string
	CreatedAt   time.Time
	SentAt      time.Time // zero until sent
	Failed      bool      // gave up
}

// Store is the whole storage interface. Methods are safe for concurrent use.
type Store interface {
	// Accounts
	CreateAccount(ctx context.Context, a Account) error // ErrAlreadyExists if the username (or id) is taken, even by a tombstone; ErrEmailTaken if a.EmailVerified and the email is another account's verified email
	GetAccount(ctx context.Context, id string) (Account, error)
	GetAccountByUsername(ctx context.Context, username string) (Account, error) // case-insensitive
	// GetAccountByEmail returns the account whose verified email is email (case-insensitive).
	GetAccountByEmail(ctx context.Context, email string) (Account, error)
	// UpdateAccount reads the account, calls fn, and writes the result in one
	// transaction. ID, Username and CreatedAt cannot be changed by fn.
	// ErrEmailTaken if the new verified email belongs to another account.
	UpdateAccount(ctx context.Context, id string, fn func(*Account) error) error
	// DeleteAccount turns the account into a tombstone: personal data, password,
	// groups, sessions and tokens are removed; username and id stay reserved.
	DeleteAccount(ctx context.Context, id string) error
	// PurgeUnverified removes for good accounts never verified and created before
	// cutoff, freeing their usernames. It returns the number removed.
	PurgeUnverified(ctx context.Context, cutoff time.Time) (int, error)
	ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
	CountAccounts(ctx context.Context) (int, error)

	// Groups
	AddToGroup(ctx context.Context, accountID, group string) error // idempotent
	RemoveFromGroup(ctx context.Context, accountID, group string) error
	Groups(ctx context.Context, accountID string) ([]string, error) // sorted

	// Sessions
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	UpdateSession(ctx context.Context, id string, fn func(*Session) error) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteAccountSessions ends every session of the account except keepID ("" keeps none).
	DeleteAccountSessions(ctx context.Context, accountID, keepID string) (int, error)
	ListAccountSessions(ctx context.Context, accountID string) ([]Session, error)
	DeleteExpiredSessions(ctx context.Context, now time.Time, idleCutoff time.Time) (int, error)

	// One-time tokens
	CreateToken(ctx context.Context, t Token) error
	// ConsumeToken returns and deletes the token in one step, so it works once.
	// ErrNotFound if it does not exist, has another kind, or expired at now.
	ConsumeToken(ctx context.Context, hash, kind string, now time.Time) (Token, error)
	DeleteAccountTokens(ctx context.Context, accountID, kind string) error
	DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error)

	// Counters (throttles, rate limits). Hit adds one in an atomic upsert; when the
	// current window started at or before now-window, a new window starts at 1.
	Hit(ctx context.Context, key string, now time.Time, window time.Duration) (Counter, error)
	GetCounter(ctx context.Context, key string) (Counter, error) // zero Counter if absent
	// Attempt decides and counts in one atomic step, so that concurrent
	// attempts (on any node) cannot all pass a check made before any of them
	// was counted: allow is called with the current counter (zero if absent);
	// when it returns false nothing is written and ok is false, otherwise the
	// attempt is counted as Hit counts it. allow must not call the store.
	Attempt(ctx context.Context, key string, now time.Time, window time.Duration, allow func(Counter) bool) (c Counter, ok bool, err error)
	// Release takes one back from key's count (an attempt that turned out
	// well), never below zero; nothing happens when the counter is absent.
	Release(ctx context.Context, key string) error
	ResetCounter(ctx context.Context, key string) error

	// Ephemeral values: pending protocol requests, replay caches.
	// PutEphemeral fails with ErrAlreadyExists if an unexpired value has the key.
	PutEphemeral(ctx context.Context, key string, value []byte, expires time.Time) error
	// TakeEphemeral returns and deletes the value; ErrNotFound if absent or expired.
	TakeEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error)
	GetEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error)
	DeleteExpiredEphemeral(ctx context.Context, now time.Time) (int, error)

	// Secrets: named random values (cookie keys, SRS secret, pairwise-id salt).
	// GetOrCreateSecret returns the stored value, or stores gen's value when absent;
	// concurrent callers on several nodes all get the same value.
	GetOrCreateSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)

	// Signing keys
	ListKeys(ctx context.Context, purpose string) ([]SigningKey, error) // oldest first
	AddKey(ctx context.Context, k SigningKey) error
	// SetKeyState changes one key's state; making a key active retires the
	// previously active key of the same purpose in the same transaction.
	SetKeyState(ctx context.Context, id, state string) error
	DeleteKey(ctx context.Context, id string) error

	// Outgoing mail
	EnqueueMail(ctx context.Context, m OutMail) (int64, error)
	// ClaimMail returns up to limit unsent, not failed messages due at now and
	// pushes their NextAttempt to leaseUntil, so that no other node sends them
	// at the same time.
	ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]OutMail, error)
	MarkMailSent(ctx context.Context, id int64, at time.Time) error
	MarkMailRetry(ctx context.Context, id int64, next time.Time, lastErr string, failed bool) error
	ListMail(ctx context.Context, limit int) ([]OutMail, error) // newest first (dev outbox, admin)

	// Audit trail
	AddAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)

	Ping(ctx context.Context) error
	Close() error
}
