// Package storetest is the conformance suite every store.Store backend must
// pass: Run exercises each method of the interface, its edge cases and its
// behaviour under concurrent callers. store.LoadMigrations checks a backend's
// embedded migration files.
//
// Times in the suite have microsecond precision, the finest PostgreSQL keeps.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// Run runs the conformance suite. newStore returns an empty store, which the
// caller closes in t.Cleanup. Subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"AccountCreateGet", testAccountCreateGet},
		{"AccountDuplicates", testAccountDuplicates},
		{"AccountEmailUniqueness", testAccountEmailUniqueness},
		{"AccountUpdate", testAccountUpdate},
		{"AccountUpdateConcurrent", testAccountUpdateConcurrent},
		{"AccountDelete", testAccountDelete},
		{"AccountPurgeUnverified", testAccountPurgeUnverified},
		{"AccountList", testAccountList},
		{"Groups", testGroups},
		{"Sessions", testSessions},
		{"SessionsExpiry", testSessionsExpiry},
		{"Tokens", testTokens},
		{"TokenConsumeConcurrent", testTokenConsumeConcurrent},
		{"Counters", testCounters},
		{"CounterHitConcurrent", testCounterHitConcurrent},
		{"CounterAttempt", testCounterAttempt},
		{"Ephemeral", testEphemeral},
		{"EphemeralConcurrent", testEphemeralConcurrent},
		{"Secrets", testSecrets},
		{"Keys", testKeys},
		{"KeysConcurrentActivate", testKeysConcurrentActivate},
		{"Mail", testMail},
		{"MailClaimConcurrent", testMailClaimConcurrent},
		{"Audit", testAudit},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// t0 is the suite's reference time: UTC, microsecond precision.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func mustAccount(t *testing.T, s store.Store, id, username, email string, verified bool) store.Account {
	t.Helper()
	a := store.Account{
		ID: id, Username: username, FirstName: "First " + username, LastName: "Last",
		Email: email, EmailVerified: verified, PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$x$y",
		CreatedAt: t0, UpdatedAt: t0,
	}
	if err := s.CreateAccount(t.Context(), a); err != nil {
		t.Fatalf("CreateAccount(%s): %v", username, err)
	}
	return a
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if want.IsZero() && !got.IsZero() {
		t.Errorf("%s = %v, want the zero time", what, got)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

func sameAccount(t *testing.T, got, want store.Account) {
	t.Helper()
	sameTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	sameTime(t, "LastLoginAt", got.LastLoginAt, want.LastLoginAt)
	got.CreatedAt, got.UpdatedAt, got.LastLoginAt = time.Time{}, time.Time{}, time.Time{}
	want.CreatedAt, want.UpdatedAt, want.LastLoginAt = time.Time{}, time.Time{}, time.Time{}
	if got != want {
		t.Errorf("account\n got %+v\nwant %+v", got, want)
	}
}

func testAccountCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Account{
		ID: "id-alice", Username: "alice", FirstName: "Alice", LastName: "Liddell",
		Email: "Alice@Example.org", EmailVerified: true, PendingEmail: "new@example.org",
		PasswordHash: "$argon2id$hash", Locked: true,
		CreatedAt: t0, UpdatedAt: t0.Add(time.Second), LastLoginAt: t0.Add(time.Minute),
	}
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	got, err := s.GetAccount(ctx, "id-alice")
	noErr(t, "GetAccount", err)
	sameAccount(t, got, a)

	for _, name := range []string{"alice", "ALICE", "Alice"} {
		got, err := s.GetAccountByUsername(ctx, name)
		noErr(t, "GetAccountByUsername "+name, err)
		sameAccount(t, got, a)
	}
	for _, email := range []string{"alice@example.org", "ALICE@EXAMPLE.ORG", "Alice@Example.org"} {
		got, err := s.GetAccountByEmail(ctx, email)
		noErr(t, "GetAccountByEmail "+email, err)
		sameAccount(t, got, a)
	}

	// Zero times round-trip as zero; a mixed-case username is stored lowercase.
	b := store.Account{ID: "id-bob", Username: "Bob", Email: "bob@example.org", CreatedAt: t0, UpdatedAt: t0}
	noErr(t, "CreateAccount bob", s.CreateAccount(ctx, b))
	got, err = s.GetAccountByUsername(ctx, "bob")
	noErr(t, "GetAccountByUsername bob", err)
	b.Username = "bob"
	sameAccount(t, got, b)

	_, err = s.GetAccount(ctx, "nobody")
	wantErr(t, "GetAccount missing", err, store.ErrNotFound)
	_, err = s.GetAccountByUsername(ctx, "nobody")
	wantErr(t, "GetAccountByUsername missing", err, store.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "nobody@example.org")
	wantErr(t, "GetAccountByEmail missing", err, store.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "bob@example.org")
	wantErr(t, "GetAccountByEmail of an unverified email", err, store.ErrNotFound)
	_, err = s.GetAccountByEmail(ctx, "")
	wantErr(t, "GetAccountByEmail empty", err, store.ErrNotFound)

	n, err := s.CountAccounts(ctx)
	noErr(t, "CountAccounts", err)
	if n != 2 {
		t.Errorf("CountAccounts = %d, want 2", n)
	}
}

func testAccountDuplicates(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-1", "carol", "carol@example.org", true)
	err := s.CreateAccount(ctx, store.Account{ID: "id-2", Username: "carol", CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "same username", err, store.ErrAlreadyExists)
	err = s.CreateAccount(ctx, store.Account{ID: "id-3", Username: "CAROL", CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "same username in capitals", err, store.ErrAlreadyExists)
	err = s.CreateAccount(ctx, store.Account{ID: "id-1", Username: "dave", CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "same id", err, store.ErrAlreadyExists)
	if _, err := s.GetAccountByUsername(ctx, "dave"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("dave exists after a failed create: %v", err)
	}
}

func testAccountEmailUniqueness(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Two registrations may share an unverified email.
	mustAccount(t, s, "id-a", "anna", "shared@example.org", false)
	mustAccount(t, s, "id-b", "bert", "SHARED@example.org", false)

	// The first to verify wins.
	noErr(t, "verify anna", s.UpdateAccount(ctx, "id-a", func(a *store.Account) error {
		a.EmailVerified = true
		return nil
	}))
	err := s.UpdateAccount(ctx, "id-b", func(a *store.Account) error {
		a.EmailVerified = true
		return nil
	})
	wantErr(t, "verify bert with anna's email", err, store.ErrEmailTaken)
	b, err := s.GetAccount(ctx, "id-b")
	noErr(t, "GetAccount bert", err)
	if b.EmailVerified {
		t.Error("bert verified after ErrEmailTaken")
	}

	// A verified create with a verified email taken, in another case.
	err = s.CreateAccount(ctx, store.Account{ID: "id-c", Username: "cleo", Email: "Shared@Example.ORG",
		EmailVerified: true, CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "create verified with taken email", err, store.ErrEmailTaken)
	// Unverified is fine.
	mustAccount(t, s, "id-c", "cleo", "Shared@Example.ORG", false)

	// Changing a verified account's email to a taken one.
	mustAccount(t, s, "id-d", "dora", "dora@example.org", true)
	err = s.UpdateAccount(ctx, "id-d", func(a *store.Account) error {
		a.Email = "shared@EXAMPLE.org"
		return nil
	})
	wantErr(t, "change verified email to a taken one", err, store.ErrEmailTaken)

	got, err := s.GetAccountByEmail(ctx, "SHARED@EXAMPLE.ORG")
	noErr(t, "GetAccountByEmail", err)
	if got.ID != "id-a" {
		t.Errorf("GetAccountByEmail = %s, want id-a", got.ID)
	}

	// When anna's account is deleted, the address is free to verify.
	noErr(t, "DeleteAccount anna", s.DeleteAccount(ctx, "id-a"))
	noErr(t, "verify bert", s.UpdateAccount(ctx, "id-b", func(a *store.Account) error {
		a.EmailVerified = true
		return nil
	}))
	got, err = s.GetAccountByEmail(ctx, "shared@example.org")
	noErr(t, "GetAccountByEmail after delete", err)
	if got.ID != "id-b" {
		t.Errorf("GetAccountByEmail = %s, want id-b", got.ID)
	}
}

func testAccountUpdate(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := mustAccount(t, s, "id-e", "emma", "emma@example.org", true)
	later := t0.Add(time.Hour)
	noErr(t, "UpdateAccount", s.UpdateAccount(ctx, "id-e", func(a *store.Account) error {
		a.ID, a.Username, a.CreatedAt = "hijack", "hijack", later // ignored
		a.FirstName, a.LastName = "Emma", "Woodhouse"
		a.PendingEmail = "emma2@example.org"
		a.PasswordHash = "new-hash"
		a.Locked = true
		a.UpdatedAt = later
		a.LastLoginAt = later
		return nil
	}))
	got, err := s.GetAccount(ctx, "id-e")
	noErr(t, "GetAccount", err)
	want := orig
	want.FirstName, want.LastName, want.PendingEmail, want.PasswordHash, want.Locked = "Emma", "Woodhouse", "emma2@example.org", "new-hash", true
	want.UpdatedAt, want.LastLoginAt = later, later
	sameAccount(t, got, want)
	if _, err := s.GetAccountByUsername(ctx, "hijack"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("username changed by UpdateAccount: %v", err)
	}

	// An error from fn is returned and nothing is written.
	boom := errors.New("boom")
	err = s.UpdateAccount(ctx, "id-e", func(a *store.Account) error {
		a.FirstName = "Changed"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateAccount fn error = %v, want boom", err)
	}
	got, _ = s.GetAccount(ctx, "id-e")
	if got.FirstName != "Emma" {
		t.Errorf("FirstName = %q after a failed update", got.FirstName)
	}

	err = s.UpdateAccount(ctx, "nobody", func(*store.Account) error { return nil })
	wantErr(t, "UpdateAccount missing", err, store.ErrNotFound)
}

func testAccountUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-f", "fred", "fred@example.org", true)
	noErr(t, "set counter", s.UpdateAccount(ctx, "id-f", func(a *store.Account) error {
		a.FirstName = "0"
		return nil
	}))
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.UpdateAccount(ctx, "id-f", func(a *store.Account) error {
				v, err := strconv.Atoi(a.FirstName)
				if err != nil {
					return err
				}
				a.FirstName = strconv.Itoa(v + 1)
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, "concurrent UpdateAccount", err)
	}
	got, err := s.GetAccount(ctx, "id-f")
	noErr(t, "GetAccount", err)
	if got.FirstName != strconv.Itoa(n) {
		t.Errorf("after %d concurrent increments FirstName = %s (lost updates)", n, got.FirstName)
	}
}

func testAccountDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-g", "gina", "gina@example.org", true)
	other := mustAccount(t, s, "id-h", "hugo", "hugo@example.org", true)
	for _, id := range []string{"id-g", "id-h"} {
		noErr(t, "AddToGroup", s.AddToGroup(ctx, id, "admins"))
		noErr(t, "CreateSession", s.CreateSession(ctx, store.Session{ID: "s-" + id, AccountID: id,
			CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), AuthnAt: t0}))
		noErr(t, "CreateToken", s.CreateToken(ctx, store.Token{Hash: "t-" + id, Kind: store.TokenResetPassword,
			AccountID: id, Email: id + "@example.org", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	}
	noErr(t, "DeleteAccount", s.DeleteAccount(ctx, "id-g"))

	got, err := s.GetAccount(ctx, "id-g")
	noErr(t, "GetAccount tombstone", err)
	if !got.Deleted || got.Username != "gina" || got.ID != "id-g" {
		t.Errorf("tombstone = %+v, want Deleted with id and username", got)
	}
	if got.FirstName != "" || got.LastName != "" || got.Email != "" || got.EmailVerified ||
		got.PendingEmail != "" || got.PasswordHash != "" {
		t.Errorf("tombstone keeps personal data: %+v", got)
	}
	got, err = s.GetAccountByUsername(ctx, "GINA")
	noErr(t, "GetAccountByUsername tombstone", err)
	if !got.Deleted {
		t.Error("GetAccountByUsername: tombstone not marked Deleted")
	}
	_, err = s.GetAccountByEmail(ctx, "gina@example.org")
	wantErr(t, "GetAccountByEmail of a deleted account", err, store.ErrNotFound)

	err = s.CreateAccount(ctx, store.Account{ID: "id-new", Username: "gina", CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "reuse a deleted username", err, store.ErrAlreadyExists)
	err = s.CreateAccount(ctx, store.Account{ID: "id-g", Username: "gina2", CreatedAt: t0, UpdatedAt: t0})
	wantErr(t, "reuse a deleted id", err, store.ErrAlreadyExists)
	// The verified email is free again.
	mustAccount(t, s, "id-i", "gina-again", "GINA@example.org", true)

	groups, err := s.Groups(ctx, "id-g")
	noErr(t, "Groups", err)
	if len(groups) != 0 {
		t.Errorf("groups of a deleted account: %v", groups)
	}
	_, err = s.GetSession(ctx, "s-id-g")
	wantErr(t, "session of a deleted account", err, store.ErrNotFound)
	_, err = s.ConsumeToken(ctx, "t-id-g", store.TokenResetPassword, t0)
	wantErr(t, "token of a deleted account", err, store.ErrNotFound)
	err = s.AddToGroup(ctx, "id-g", "admins")
	wantErr(t, "AddToGroup on a tombstone", err, store.ErrNotFound)

	// The other account is untouched.
	got, err = s.GetAccount(ctx, "id-h")
	noErr(t, "GetAccount other", err)
	sameAccount(t, got, other)
	if g, _ := s.Groups(ctx, "id-h"); !reflect.DeepEqual(g, []string{"admins"}) {
		t.Errorf("other's groups = %v", g)
	}
	if _, err := s.GetSession(ctx, "s-id-h"); err != nil {
		t.Errorf("other's session: %v", err)
	}
	if _, err := s.ConsumeToken(ctx, "t-id-h", store.TokenResetPassword, t0); err != nil {
		t.Errorf("other's token: %v", err)
	}

	n, err := s.CountAccounts(ctx)
	noErr(t, "CountAccounts", err)
	if n != 2 {
		t.Errorf("CountAccounts = %d, want 2 (tombstones not counted)", n)
	}
	wantErr(t, "DeleteAccount missing", s.DeleteAccount(ctx, "nobody"), store.ErrNotFound)
}

func testAccountPurgeUnverified(t *testing.T, s store.Store) {
	ctx := t.Context()
	old := t0.Add(-72 * time.Hour)
	create := func(id, name string, created time.Time, verified bool) {
		t.Helper()
		noErr(t, "CreateAccount "+name, s.CreateAccount(ctx, store.Account{ID: id, Username: name,
			Email: name + "@example.org", EmailVerified: verified, CreatedAt: created, UpdatedAt: created}))
	}
	create("id-old", "oldunverified", old, false)
	create("id-new", "newunverified", t0, false)
	create("id-ver", "oldverified", old, true)
	create("id-del", "olddeleted", old, false)
	create("id-was", "wasverified", old, true)
	noErr(t, "AddToGroup", s.AddToGroup(ctx, "id-old", "g"))
	noErr(t, "CreateSession", s.CreateSession(ctx, store.Session{ID: "s-old", AccountID: "id-old", CreatedAt: old, LastSeenAt: old, ExpiresAt: t0, AuthnAt: old}))
	noErr(t, "CreateToken", s.CreateToken(ctx, store.Token{Hash: "t-old", Kind: store.TokenVerifyEmail, AccountID: "id-old", CreatedAt: old, ExpiresAt: t0.Add(time.Hour)}))
	noErr(t, "DeleteAccount", s.DeleteAccount(ctx, "id-del"))
	// Verified once, then unverified: not "never verified".
	noErr(t, "unverify", s.UpdateAccount(ctx, "id-was", func(a *store.Account) error {
		a.EmailVerified = false
		return nil
	}))

	n, err := s.PurgeUnverified(ctx, t0.Add(-48*time.Hour))
	noErr(t, "PurgeUnverified", err)
	if n != 1 {
		t.Errorf("PurgeUnverified = %d, want 1", n)
	}
	_, err = s.GetAccount(ctx, "id-old")
	wantErr(t, "purged account", err, store.ErrNotFound)
	for _, id := range []string{"id-new", "id-ver", "id-del", "id-was"} {
		if _, err := s.GetAccount(ctx, id); err != nil {
			t.Errorf("%s purged: %v", id, err)
		}
	}
	_, err = s.ConsumeToken(ctx, "t-old", store.TokenVerifyEmail, t0)
	wantErr(t, "token of a purged account", err, store.ErrNotFound)
	_, err = s.GetSession(ctx, "s-old")
	wantErr(t, "session of a purged account", err, store.ErrNotFound)
	// The username is free again, and the new account has no old groups.
	create("id-old2", "OldUnverified", t0, false)
	if g, _ := s.Groups(ctx, "id-old2"); len(g) != 0 {
		t.Errorf("groups leaked to the new account: %v", g)
	}
	n, err = s.PurgeUnverified(ctx, t0.Add(-48*time.Hour))
	noErr(t, "PurgeUnverified again", err)
	if n != 0 {
		t.Errorf("second PurgeUnverified = %d, want 0", n)
	}
}

func testAccountList(t *testing.T, s store.Store) {
	ctx := t.Context()
	for i, p := range []struct{ name, first, last, email string }{
		{"zed", "Zed", "Zulu", "zed@example.org"},
		{"amy", "Amy", "Pond", "AMY.POND@tardis.example"},
		{"rory", "Rory", "Williams", "rory@example.org"},
		{"clara", "Clara", "Oswald", "clara@impossible.example"},
		{"river", "River", "Song", "river@example.org"},
	} {
		noErr(t, "CreateAccount", s.CreateAccount(ctx, store.Account{ID: fmt.Sprintf("id-%d", i), Username: p.name,
			FirstName: p.first, LastName: p.last, Email: p.email, EmailVerified: true,
			CreatedAt: t0.Add(time.Duration(i) * time.Second), UpdatedAt: t0}))
	}
	noErr(t, "AddToGroup", s.AddToGroup(ctx, "id-1", "companions"))
	noErr(t, "AddToGroup", s.AddToGroup(ctx, "id-2", "companions"))
	noErr(t, "AddToGroup", s.AddToGroup(ctx, "id-3", "companions"))
	noErr(t, "DeleteAccount", s.DeleteAccount(ctx, "id-4"))

	names := func(f store.AccountFilter) []string {
		t.Helper()
		as, err := s.ListAccounts(ctx, f)
		noErr(t, "ListAccounts", err)
		out := []string{}
		for _, a := range as {
			out = append(out, a.Username)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.AccountFilter
		want []string
	}{
		{store.AccountFilter{}, []string{"amy", "clara", "rory", "zed"}},
		{store.AccountFilter{IncludeDeleted: true}, []string{"amy", "clara", "river", "rory", "zed"}},
		{store.AccountFilter{Query: "POND"}, []string{"amy"}},                // last name, other case
		{store.AccountFilter{Query: "tardis"}, []string{"amy"}},              // email
		{store.AccountFilter{Query: "Ro"}, []string{"rory"}},                 // username
		{store.AccountFilter{Query: "oswa"}, []string{"clara"}},              // last name
		{store.AccountFilter{Query: "example.org"}, []string{"rory", "zed"}}, // river is deleted
		{store.AccountFilter{Query: "%"}, []string{}},                        // no wildcards
		{store.AccountFilter{Query: "_"}, []string{}},
		{store.AccountFilter{Group: "companions"}, []string{"amy", "clara", "rory"}},
		{store.AccountFilter{Group: "nobody"}, []string{}},
		{store.AccountFilter{Group: "companions", Query: "W"}, []string{"clara", "rory"}},
		{store.AccountFilter{Limit: 2}, []string{"amy", "clara"}},
		{store.AccountFilter{Limit: 2, Offset: 2}, []string{"rory", "zed"}},
		{store.AccountFilter{Offset: 3}, []string{"zed"}},
		{store.AccountFilter{Offset: 10}, []string{}},
	} {
		if got := names(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListAccounts(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	n, err := s.CountAccounts(ctx)
	noErr(t, "CountAccounts", err)
	if n != 4 {
		t.Errorf("CountAccounts = %d, want 4", n)
	}
}

func testGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-j", "jack", "jack@example.org", true)
	for _, g := range []string{"wiki", "admins", "wiki", "dev"} {
		noErr(t, "AddToGroup "+g, s.AddToGroup(ctx, "id-j", g))
	}
	got, err := s.Groups(ctx, "id-j")
	noErr(t, "Groups", err)
	if want := []string{"admins", "dev", "wiki"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Groups = %v, want %v", got, want)
	}
	noErr(t, "RemoveFromGroup", s.RemoveFromGroup(ctx, "id-j", "dev"))
	noErr(t, "RemoveFromGroup not a member", s.RemoveFromGroup(ctx, "id-j", "dev"))
	got, _ = s.Groups(ctx, "id-j")
	if want := []string{"admins", "wiki"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Groups after remove = %v, want %v", got, want)
	}
	wantErr(t, "AddToGroup missing account", s.AddToGroup(ctx, "nobody", "wiki"), store.ErrNotFound)
	got, err = s.Groups(ctx, "nobody")
	noErr(t, "Groups of nobody", err)
	if len(got) != 0 {
		t.Errorf("Groups of nobody = %v", got)
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-k", "kate", "kate@example.org", true)
	mustAccount(t, s, "id-l", "liam", "liam@example.org", true)
	sess := store.Session{
		ID: "sha-1", AccountID: "id-k", CreatedAt: t0, LastSeenAt: t0.Add(time.Minute),
		ExpiresAt: t0.Add(10 * time.Hour), AuthnAt: t0, IP: "192.0.2.1", UserAgent: "Firefox",
	}
	noErr(t, "CreateSession", s.CreateSession(ctx, sess))
	wantErr(t, "CreateSession duplicate", s.CreateSession(ctx, sess), store.ErrAlreadyExists)
	wantErr(t, "CreateSession missing account", s.CreateSession(ctx, store.Session{ID: "x", AccountID: "nobody",
		CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0, AuthnAt: t0}), store.ErrNotFound)
	got, err := s.GetSession(ctx, "sha-1")
	noErr(t, "GetSession", err)
	sameSession(t, got, sess)

	parts := []store.Participant{
		{Protocol: "saml", Client: "atlassian", NameID: "kate@id.example.org", NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", SessionIndex: "idx1"},
		{Protocol: "oidc", Client: "wiki"},
	}
	noErr(t, "UpdateSession", s.UpdateSession(ctx, "sha-1", func(ss *store.Session) error {
		ss.ID, ss.AccountID = "hijack", "id-l" // ignored
		ss.LastSeenAt = t0.Add(2 * time.Minute)
		ss.AuthnAt = t0.Add(2 * time.Minute)
		ss.IP = "192.0.2.2"
		ss.Participants = append(ss.Participants, parts...)
		return nil
	}))
	want := sess
	want.LastSeenAt, want.AuthnAt, want.IP, want.Participants = t0.Add(2*time.Minute), t0.Add(2*time.Minute), "192.0.2.2", parts
	got, err = s.GetSession(ctx, "sha-1")
	noErr(t, "GetSession after update", err)
	sameSession(t, got, want)

	boom := errors.New("boom")
	if err := s.UpdateSession(ctx, "sha-1", func(ss *store.Session) error { ss.IP = "x"; return boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateSession fn error = %v", err)
	}
	wantErr(t, "UpdateSession missing", s.UpdateSession(ctx, "nope", func(*store.Session) error { return nil }), store.ErrNotFound)

	for i := 2; i <= 4; i++ {
		noErr(t, "CreateSession", s.CreateSession(ctx, store.Session{ID: fmt.Sprintf("sha-%d", i), AccountID: "id-k",
			CreatedAt: t0.Add(time.Duration(i) * time.Second), LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), AuthnAt: t0}))
	}
	noErr(t, "CreateSession liam", s.CreateSession(ctx, store.Session{ID: "liam-1", AccountID: "id-l",
		CreatedAt: t0, LastSeenAt: t0, ExpiresAt: t0.Add(time.Hour), AuthnAt: t0}))
	list, err := s.ListAccountSessions(ctx, "id-k")
	noErr(t, "ListAccountSessions", err)
	if ids := sessionIDs(list); !reflect.DeepEqual(ids, []string{"sha-1", "sha-2", "sha-3", "sha-4"}) {
		t.Errorf("ListAccountSessions = %v", ids)
	}
	if len(list) > 0 && !reflect.DeepEqual(list[0].Participants, parts) {
		t.Errorf("listed participants = %+v", list[0].Participants)
	}

	noErr(t, "DeleteSession", s.DeleteSession(ctx, "sha-4"))
	wantErr(t, "DeleteSession twice", s.DeleteSession(ctx, "sha-4"), store.ErrNotFound)
	n, err := s.DeleteAccountSessions(ctx, "id-k", "sha-2")
	noErr(t, "DeleteAccountSessions", err)
	if n != 2 {
		t.Errorf("DeleteAccountSessions = %d, want 2", n)
	}
	list, _ = s.ListAccountSessions(ctx, "id-k")
	if ids := sessionIDs(list); !reflect.DeepEqual(ids, []string{"sha-2"}) {
		t.Errorf("after DeleteAccountSessions keep sha-2: %v", ids)
	}
	n, err = s.DeleteAccountSessions(ctx, "id-k", "")
	noErr(t, "DeleteAccountSessions keep none", err)
	if n != 1 {
		t.Errorf("DeleteAccountSessions keep none = %d, want 1", n)
	}
	if _, err := s.GetSession(ctx, "liam-1"); err != nil {
		t.Errorf("another account's session was deleted: %v", err)
	}
}

func sessionIDs(ss []store.Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

func sameSession(t *testing.T, got, want store.Session) {
	t.Helper()
	sameTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	sameTime(t, "LastSeenAt", got.LastSeenAt, want.LastSeenAt)
	sameTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	sameTime(t, "AuthnAt", got.AuthnAt, want.AuthnAt)
	if len(got.Participants) == 0 && len(want.Participants) == 0 {
		got.Participants, want.Participants = nil, nil
	}
	got.CreatedAt, got.LastSeenAt, got.ExpiresAt, got.AuthnAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.CreatedAt, want.LastSeenAt, want.ExpiresAt, want.AuthnAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("session\n got %+v\nwant %+v", got, want)
	}
}

func testSessionsExpiry(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-m", "mia", "mia@example.org", true)
	for _, ss := range []store.Session{
		{ID: "expired", ExpiresAt: t0, LastSeenAt: t0},                             // absolute end reached
		{ID: "idle", ExpiresAt: t0.Add(time.Hour), LastSeenAt: t0.Add(-time.Hour)}, // idle too long
		{ID: "fresh", ExpiresAt: t0.Add(time.Hour), LastSeenAt: t0.Add(-time.Minute)},
	} {
		ss.AccountID, ss.CreatedAt, ss.AuthnAt = "id-m", t0.Add(-2*time.Hour), t0.Add(-2*time.Hour)
		noErr(t, "CreateSession "+ss.ID, s.CreateSession(ctx, ss))
	}
	n, err := s.DeleteExpiredSessions(ctx, t0, t0.Add(-30*time.Minute))
	noErr(t, "DeleteExpiredSessions", err)
	if n != 2 {
		t.Errorf("DeleteExpiredSessions = %d, want 2", n)
	}
	list, _ := s.ListAccountSessions(ctx, "id-m")
	if ids := sessionIDs(list); !reflect.DeepEqual(ids, []string{"fresh"}) {
		t.Errorf("left %v, want [fresh]", ids)
	}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-n", "nina", "nina@example.org", true)
	tok := store.Token{Hash: "h1", Kind: store.TokenResetPassword, AccountID: "id-n", Email: "nina@example.org",
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	noErr(t, "CreateToken", s.CreateToken(ctx, tok))
	wantErr(t, "CreateToken duplicate", s.CreateToken(ctx, tok), store.ErrAlreadyExists)
	wantErr(t, "CreateToken missing account", s.CreateToken(ctx, store.Token{Hash: "hx", Kind: store.TokenVerifyEmail,
		AccountID: "nobody", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}), store.ErrNotFound)

	_, err := s.ConsumeToken(ctx, "h1", store.TokenVerifyEmail, t0)
	wantErr(t, "ConsumeToken wrong kind", err, store.ErrNotFound)
	got, err := s.ConsumeToken(ctx, "h1", store.TokenResetPassword, t0.Add(time.Minute))
	noErr(t, "ConsumeToken", err)
	sameTime(t, "token CreatedAt", got.CreatedAt, tok.CreatedAt)
	sameTime(t, "token ExpiresAt", got.ExpiresAt, tok.ExpiresAt)
	got.CreatedAt, got.ExpiresAt, tok.CreatedAt, tok.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != tok {
		t.Errorf("ConsumeToken = %+v, want %+v", got, tok)
	}
	_, err = s.ConsumeToken(ctx, "h1", store.TokenResetPassword, t0.Add(time.Minute))
	wantErr(t, "ConsumeToken twice", err, store.ErrNotFound)

	// Expiry: at ExpiresAt the token is expired.
	noErr(t, "CreateToken h2", s.CreateToken(ctx, store.Token{Hash: "h2", Kind: store.TokenVerifyEmail,
		AccountID: "id-n", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	_, err = s.ConsumeToken(ctx, "h2", store.TokenVerifyEmail, t0.Add(time.Hour))
	wantErr(t, "ConsumeToken expired", err, store.ErrNotFound)

	for i, kind := range []string{store.TokenVerifyEmail, store.TokenChangeEmail, store.TokenChangeEmail} {
		noErr(t, "CreateToken", s.CreateToken(ctx, store.Token{Hash: fmt.Sprintf("k%d", i), Kind: kind,
			AccountID: "id-n", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	}
	noErr(t, "DeleteAccountTokens", s.DeleteAccountTokens(ctx, "id-n", store.TokenChangeEmail))
	for i, want := range []error{nil, store.ErrNotFound, store.ErrNotFound} {
		kind := []string{store.TokenVerifyEmail, store.TokenChangeEmail, store.TokenChangeEmail}[i]
		_, err := s.ConsumeToken(ctx, fmt.Sprintf("k%d", i), kind, t0)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("token k%d after DeleteAccountTokens: %v, want %v", i, err, want)
		}
	}

	// DeleteExpiredTokens removes h2 (expired) but not h3.
	noErr(t, "CreateToken h3", s.CreateToken(ctx, store.Token{Hash: "h3", Kind: store.TokenVerifyEmail,
		AccountID: "id-n", CreatedAt: t0, ExpiresAt: t0.Add(3 * time.Hour)}))
	n, err := s.DeleteExpiredTokens(ctx, t0.Add(2*time.Hour))
	noErr(t, "DeleteExpiredTokens", err)
	if n != 1 {
		t.Errorf("DeleteExpiredTokens = %d, want 1", n)
	}
	if _, err := s.ConsumeToken(ctx, "h3", store.TokenVerifyEmail, t0.Add(2*time.Hour)); err != nil {
		t.Errorf("h3: %v", err)
	}
	noErr(t, "CreateToken h4", s.CreateToken(ctx, store.Token{Hash: "h4", Kind: store.TokenVerifyEmail,
		AccountID: "id-n", CreatedAt: t0, ExpiresAt: t0.Add(3 * time.Hour)}))
	noErr(t, "DeleteAccountTokens all kinds", s.DeleteAccountTokens(ctx, "id-n", ""))
	_, err = s.ConsumeToken(ctx, "h4", store.TokenVerifyEmail, t0)
	wantErr(t, "token after DeleteAccountTokens all", err, store.ErrNotFound)
}

func testTokenConsumeConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustAccount(t, s, "id-o", "otto", "otto@example.org", true)
	noErr(t, "CreateToken", s.CreateToken(ctx, store.Token{Hash: "once", Kind: store.TokenResetPassword,
		AccountID: "id-o", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, misses := 0, 0
	for range n {
		wg.Go(func() {
			_, err := s.ConsumeToken(ctx, "once", store.TokenResetPassword, t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, store.ErrNotFound):
				misses++
			default:
				t.Errorf("ConsumeToken: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || misses != n-1 {
		t.Errorf("%d concurrent consumers: %d won, %d missed; want 1 and %d", n, wins, misses, n-1)
	}
}

// testCounterAttempt: the decision and the count are one step, so that 30
// concurrent attempts against a limit of 5 let exactly 5 through (a check
// made apart from the count would let them all through).
func testCounterAttempt(t *testing.T, s store.Store) {
	ctx := t.Context()
	const limit = 5
	allow := func(c store.Counter) bool { return c.Count < limit }
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, passed, err := s.Attempt(ctx, "attempt", t0, time.Hour, allow)
			if err != nil {
				t.Error(err)
			}
			if passed {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != limit {
		t.Errorf("%d of 30 concurrent attempts passed a limit of %d", ok.Load(), limit)
	}
	c, err := s.GetCounter(ctx, "attempt")
	noErr(t, "GetCounter", err)
	if c.Count != limit {
		t.Errorf("count = %d after the refused attempts, want %d (a refusal writes nothing)", c.Count, limit)
	}
	got, passed, err := s.Attempt(ctx, "attempt", t0, time.Hour, allow)
	noErr(t, "Attempt", err)
	if passed || got.Count != limit {
		t.Errorf("refused attempt returned %+v, %v", got, passed)
	}
	noErr(t, "Release", s.Release(ctx, "attempt"))
	if c, _ := s.GetCounter(ctx, "attempt"); c.Count != limit-1 {
		t.Errorf("after Release: count %d", c.Count)
	}
	if _, passed, _ := s.Attempt(ctx, "attempt", t0, time.Hour, allow); !passed {
		t.Error("an attempt after a release was refused")
	}
	// A counted attempt after the window restarts the count, as Hit does.
	c, passed, err = s.Attempt(ctx, "attempt", t0.Add(2*time.Hour), time.Hour, func(store.Counter) bool { return true })
	noErr(t, "Attempt", err)
	if !passed || c.Count != 1 {
		t.Errorf("attempt after the window: %+v, %v; want a new window at 1", c, passed)
	}
	noErr(t, "Release absent", s.Release(ctx, "nobody"))
	if c, _ := s.GetCounter(ctx, "nobody"); c.Count != 0 {
		t.Errorf("Release created a counter: %+v", c)
	}
	for range 3 {
		s.Release(ctx, "attempt")
	}
	if c, _ := s.GetCounter(ctx, "attempt"); c.Count < 0 {
		t.Errorf("count went below zero: %d", c.Count)
	}
}

func testCounters(t *testing.T, s store.Store) {
	ctx := t.Context()
	c, err := s.GetCounter(ctx, "login:ip:192.0.2.1")
	noErr(t, "GetCounter absent", err)
	if c.Count != 0 {
		t.Errorf("absent counter = %+v", c)
	}
	const w = time.Minute
	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		c, err := s.Hit(ctx, "k", now, w)
		noErr(t, "Hit", err)
		if c.Count != i {
			t.Errorf("hit %d: Count = %d", i, c.Count)
		}
		sameTime(t, "WindowStart", c.WindowStart, t0.Add(time.Second))
		sameTime(t, "LastHit", c.LastHit, now)
	}
	c, err = s.GetCounter(ctx, "k")
	noErr(t, "GetCounter", err)
	if c.Key != "k" || c.Count != 3 {
		t.Errorf("GetCounter = %+v", c)
	}
	// Still in the window just before it ends.
	c, _ = s.Hit(ctx, "k", t0.Add(time.Second+w-time.Microsecond), w)
	if c.Count != 4 {
		t.Errorf("hit inside the window: Count = %d, want 4", c.Count)
	}
	// At window start + window, a new window starts at 1.
	end := t0.Add(time.Second + w)
	c, err = s.Hit(ctx, "k", end, w)
	noErr(t, "Hit new window", err)
	if c.Count != 1 {
		t.Errorf("hit after the window: Count = %d, want 1", c.Count)
	}
	sameTime(t, "new WindowStart", c.WindowStart, end)
	// Another key is separate.
	c, _ = s.Hit(ctx, "other", end, w)
	if c.Count != 1 {
		t.Errorf("other key: Count = %d", c.Count)
	}
	noErr(t, "ResetCounter", s.ResetCounter(ctx, "k"))
	noErr(t, "ResetCounter absent", s.ResetCounter(ctx, "k"))
	c, _ = s.GetCounter(ctx, "k")
	if c.Count != 0 {
		t.Errorf("after reset: %+v", c)
	}
	c, _ = s.Hit(ctx, "k", end, w)
	if c.Count != 1 {
		t.Errorf("hit after reset: Count = %d", c.Count)
	}
}

func testCounterHitConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	var wg sync.WaitGroup
	counts := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			c, err := s.Hit(ctx, "busy", t0.Add(time.Duration(i)*time.Millisecond), time.Hour)
			if err != nil {
				t.Errorf("Hit: %v", err)
				return
			}
			counts <- c.Count
		})
	}
	wg.Wait()
	close(counts)
	seen := map[int]bool{}
	for c := range counts {
		if seen[c] {
			t.Errorf("two hits returned Count %d", c)
		}
		seen[c] = true
	}
	c, err := s.GetCounter(ctx, "busy")
	noErr(t, "GetCounter", err)
	if c.Count != n {
		t.Errorf("%d concurrent hits counted %d", n, c.Count)
	}
}

func testEphemeral(t *testing.T, s store.Store) {
	ctx := t.Context()
	// PutEphemeral compares with the wall clock, so these times are real ones.
	now := time.Now().UTC().Truncate(time.Microsecond)
	exp := now.Add(time.Hour)
	noErr(t, "PutEphemeral", s.PutEphemeral(ctx, "req:1", []byte("authn request"), exp))
	wantErr(t, "PutEphemeral replay", s.PutEphemeral(ctx, "req:1", []byte("again"), exp), store.ErrAlreadyExists)
	v, err := s.GetEphemeral(ctx, "req:1", now)
	noErr(t, "GetEphemeral", err)
	if string(v) != "authn request" {
		t.Errorf("GetEphemeral = %q", v)
	}
	_, err = s.GetEphemeral(ctx, "req:1", exp)
	wantErr(t, "GetEphemeral at expiry", err, store.ErrNotFound)
	_, err = s.TakeEphemeral(ctx, "req:1", exp)
	wantErr(t, "TakeEphemeral at expiry", err, store.ErrNotFound)
	v, err = s.TakeEphemeral(ctx, "req:1", now)
	noErr(t, "TakeEphemeral", err)
	if string(v) != "authn request" {
		t.Errorf("TakeEphemeral = %q", v)
	}
	_, err = s.TakeEphemeral(ctx, "req:1", now)
	wantErr(t, "TakeEphemeral twice", err, store.ErrNotFound)
	_, err = s.GetEphemeral(ctx, "req:1", now)
	wantErr(t, "GetEphemeral after take", err, store.ErrNotFound)
	// After the take the key is free again.
	noErr(t, "PutEphemeral after take", s.PutEphemeral(ctx, "req:1", []byte("x"), exp))

	// An expired value does not block a new one.
	noErr(t, "PutEphemeral expired", s.PutEphemeral(ctx, "replay:a", []byte("old"), now.Add(-time.Second)))
	noErr(t, "PutEphemeral over an expired value", s.PutEphemeral(ctx, "replay:a", []byte("new"), exp))
	v, err = s.GetEphemeral(ctx, "replay:a", now)
	noErr(t, "GetEphemeral replaced", err)
	if string(v) != "new" {
		t.Errorf("replaced value = %q", v)
	}
	// Empty values round-trip.
	noErr(t, "PutEphemeral empty", s.PutEphemeral(ctx, "empty", nil, exp))
	v, err = s.GetEphemeral(ctx, "empty", now)
	noErr(t, "GetEphemeral empty", err)
	if len(v) != 0 {
		t.Errorf("empty value = %q", v)
	}

	noErr(t, "PutEphemeral old", s.PutEphemeral(ctx, "old1", []byte("1"), now.Add(-time.Minute)))
	noErr(t, "PutEphemeral old", s.PutEphemeral(ctx, "old2", []byte("2"), now.Add(-time.Second)))
	n, err := s.DeleteExpiredEphemeral(ctx, now)
	noErr(t, "DeleteExpiredEphemeral", err)
	if n != 2 {
		t.Errorf("DeleteExpiredEphemeral = %d, want 2", n)
	}
	for _, k := range []string{"req:1", "replay:a", "empty"} {
		if _, err := s.GetEphemeral(ctx, k, now); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
}

func testEphemeralConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	now := time.Now().UTC()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	puts, takes := 0, 0
	for range n {
		wg.Go(func() {
			err := s.PutEphemeral(ctx, "assertion-id", []byte("v"), now.Add(time.Hour))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				puts++
			} else if !errors.Is(err, store.ErrAlreadyExists) {
				t.Errorf("PutEphemeral: %v", err)
			}
		})
	}
	wg.Wait()
	for range n {
		wg.Go(func() {
			_, err := s.TakeEphemeral(ctx, "assertion-id", now)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				takes++
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("TakeEphemeral: %v", err)
			}
		})
	}
	wg.Wait()
	if puts != 1 || takes != 1 {
		t.Errorf("%d concurrent puts and takes: %d puts and %d takes succeeded, want 1 and 1", n, puts, takes)
	}
}

func testSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 20
	var wg sync.WaitGroup
	vals := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			v, err := s.GetOrCreateSecret(ctx, "cookie-key", func() ([]byte, error) {
				return []byte(fmt.Sprintf("value-%d", i)), nil
			})
			if err != nil {
				t.Errorf("GetOrCreateSecret: %v", err)
				return
			}
			vals <- string(v)
		})
	}
	wg.Wait()
	close(vals)
	var first string
	for v := range vals {
		if first == "" {
			first = v
		}
		if v != first {
			t.Errorf("concurrent callers got %q and %q", first, v)
		}
	}
	v, err := s.GetOrCreateSecret(ctx, "cookie-key", func() ([]byte, error) {
		t.Error("gen called for an existing secret")
		return []byte("other"), nil
	})
	noErr(t, "GetOrCreateSecret existing", err)
	if string(v) != first {
		t.Errorf("stored secret = %q, want %q", v, first)
	}
	boom := errors.New("no entropy")
	_, err = s.GetOrCreateSecret(ctx, "srs", func() ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Errorf("gen error = %v, want it wrapped", err)
	}
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	v, err = s.GetOrCreateSecret(ctx, "srs", func() ([]byte, error) { return bin, nil })
	noErr(t, "GetOrCreateSecret after a failed gen", err)
	if !reflect.DeepEqual(v, bin) {
		t.Errorf("binary secret = %x", v)
	}
}

func testKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	add := func(id, purpose, state string, age time.Duration, cert bool) store.SigningKey {
		t.Helper()
		k := store.SigningKey{ID: id, Purpose: purpose, State: state, KeyPEM: []byte("KEY " + id), CreatedAt: t0.Add(age)}
		if cert {
			k.CertPEM = []byte("CERT " + id)
		}
		noErr(t, "AddKey "+id, s.AddKey(ctx, k))
		return k
	}
	k1 := add("saml-1", "saml", store.KeyActive, 0, true)
	k2 := add("saml-2", "saml", store.KeyNext, time.Hour, true)
	add("dkim-1", "dkim", store.KeyActive, time.Minute, false)
	wantErr(t, "AddKey duplicate", s.AddKey(ctx, k1), store.ErrAlreadyExists)
	wantErr(t, "AddKey second active", s.AddKey(ctx, store.SigningKey{ID: "saml-3", Purpose: "saml",
		State: store.KeyActive, KeyPEM: []byte("k"), CreatedAt: t0}), store.ErrAlreadyExists)
	if err := s.AddKey(ctx, store.SigningKey{ID: "bad", Purpose: "saml", State: "bogus", KeyPEM: []byte("k")}); err == nil {
		t.Error("AddKey with a bogus state succeeded")
	}

	keys, err := s.ListKeys(ctx, "saml")
	noErr(t, "ListKeys", err)
	if len(keys) != 2 || keys[0].ID != "saml-1" || keys[1].ID != "saml-2" {
		t.Fatalf("ListKeys(saml) = %+v", keys)
	}
	sameTime(t, "key CreatedAt", keys[1].CreatedAt, k2.CreatedAt)
	if string(keys[1].KeyPEM) != "KEY saml-2" || string(keys[1].CertPEM) != "CERT saml-2" || keys[1].State != store.KeyNext || keys[1].Purpose != "saml" {
		t.Errorf("ListKeys key = %+v", keys[1])
	}
	dk, _ := s.ListKeys(ctx, "dkim")
	if len(dk) != 1 || len(dk[0].CertPEM) != 0 {
		t.Errorf("ListKeys(dkim) = %+v", dk)
	}

	noErr(t, "SetKeyState active", s.SetKeyState(ctx, "saml-2", store.KeyActive))
	keys, _ = s.ListKeys(ctx, "saml")
	if keys[0].State != store.KeyRetired || keys[1].State != store.KeyActive {
		t.Errorf("after activating saml-2: %s=%s %s=%s", keys[0].ID, keys[0].State, keys[1].ID, keys[1].State)
	}
	dk, _ = s.ListKeys(ctx, "dkim")
	if dk[0].State != store.KeyActive {
		t.Errorf("activating a saml key retired the dkim key")
	}
	noErr(t, "SetKeyState active again", s.SetKeyState(ctx, "saml-2", store.KeyActive))
	keys, _ = s.ListKeys(ctx, "saml")
	if keys[1].State != store.KeyActive {
		t.Errorf("re-activating the active key: %s", keys[1].State)
	}
	wantErr(t, "SetKeyState missing", s.SetKeyState(ctx, "nope", store.KeyActive), store.ErrNotFound)
	if err := s.SetKeyState(ctx, "saml-1", "bogus"); err == nil {
		t.Error("SetKeyState bogus succeeded")
	}

	noErr(t, "DeleteKey", s.DeleteKey(ctx, "saml-1"))
	wantErr(t, "DeleteKey twice", s.DeleteKey(ctx, "saml-1"), store.ErrNotFound)
	keys, _ = s.ListKeys(ctx, "saml")
	if len(keys) != 1 || keys[0].ID != "saml-2" {
		t.Errorf("after delete: %+v", keys)
	}
}

func testKeysConcurrentActivate(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	for i := range n {
		state := store.KeyNext
		if i == 0 {
			state = store.KeyActive
		}
		noErr(t, "AddKey", s.AddKey(ctx, store.SigningKey{ID: fmt.Sprintf("k%d", i), Purpose: "oidc",
			State: state, KeyPEM: []byte("k"), CreatedAt: t0.Add(time.Duration(i) * time.Second)}))
	}
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() {
			if err := s.SetKeyState(ctx, fmt.Sprintf("k%d", i), store.KeyActive); err != nil {
				t.Errorf("SetKeyState: %v", err)
			}
		})
	}
	wg.Wait()
	keys, err := s.ListKeys(ctx, "oidc")
	noErr(t, "ListKeys", err)
	active := 0
	for _, k := range keys {
		if k.State == store.KeyActive {
			active++
		}
	}
	if active != 1 {
		t.Errorf("%d active keys after concurrent activations, want 1", active)
	}
}

func testMail(t *testing.T, s store.Store) {
	ctx := t.Context()
	var ids []int64
	for i := range 3 {
		id, err := s.EnqueueMail(ctx, store.OutMail{From: "noreply@id.example.org", To: fmt.Sprintf("u%d@example.org", i),
			Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)), CreatedAt: t0, NextAttempt: t0.Add(time.Duration(i) * time.Minute)})
		noErr(t, "EnqueueMail", err)
		ids = append(ids, id)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Fatalf("EnqueueMail ids = %v", ids)
	}
	// At t0+1m, two are due.
	lease := t0.Add(time.Minute + 5*time.Minute)
	got, err := s.ClaimMail(ctx, t0.Add(time.Minute), lease, 10)
	noErr(t, "ClaimMail", err)
	if len(got) != 2 || got[0].ID != ids[0] || got[1].ID != ids[1] {
		t.Fatalf("ClaimMail = %+v", got)
	}
	m := got[0]
	if m.From != "noreply@id.example.org" || m.To != "u0@example.org" || string(m.Data) != "Subject: 0\r\n\r\nbody\r\n" || m.Attempts != 0 || m.Failed {
		t.Errorf("claimed mail = %+v", m)
	}
	sameTime(t, "claimed NextAttempt", m.NextAttempt, lease)
	sameTime(t, "claimed CreatedAt", m.CreatedAt, t0)
	sameTime(t, "claimed SentAt", m.SentAt, time.Time{})
	// Leased: nobody else gets them until the lease ends.
	got, _ = s.ClaimMail(ctx, t0.Add(2*time.Minute), t0.Add(time.Hour), 10)
	if len(got) != 1 || got[0].ID != ids[2] {
		t.Errorf("second claim = %+v, want only the third", got)
	}
	// Limit.
	got, _ = s.ClaimMail(ctx, lease, lease.Add(time.Minute), 1)
	if len(got) != 1 || got[0].ID != ids[0] {
		t.Errorf("claim after the lease with limit 1 = %+v", got)
	}

	noErr(t, "MarkMailSent", s.MarkMailSent(ctx, ids[0], t0.Add(7*time.Minute)))
	noErr(t, "MarkMailRetry", s.MarkMailRetry(ctx, ids[1], t0.Add(10*time.Minute), "451 try later", false))
	noErr(t, "MarkMailRetry failed", s.MarkMailRetry(ctx, ids[2], t0.Add(10*time.Minute), "550 no such user", true))
	wantErr(t, "MarkMailSent missing", s.MarkMailSent(ctx, 999999, t0), store.ErrNotFound)
	wantErr(t, "MarkMailRetry missing", s.MarkMailRetry(ctx, 999999, t0, "", false), store.ErrNotFound)

	got, _ = s.ClaimMail(ctx, t0.Add(time.Hour), t0.Add(2*time.Hour), 0)
	if len(got) != 1 || got[0].ID != ids[1] || got[0].Attempts != 1 || got[0].LastError != "451 try later" {
		t.Errorf("claim after marks = %+v, want only the retried one", got)
	}

	all, err := s.ListMail(ctx, 0)
	noErr(t, "ListMail", err)
	if len(all) != 3 || all[0].ID != ids[2] || all[2].ID != ids[0] {
		t.Fatalf("ListMail = %+v, want newest first", all)
	}
	if !all[0].Failed || all[0].LastError != "550 no such user" || all[0].Attempts != 1 {
		t.Errorf("failed mail = %+v", all[0])
	}
	sameTime(t, "SentAt", all[2].SentAt, t0.Add(7*time.Minute))
	if all[2].Attempts != 1 {
		t.Errorf("sent mail Attempts = %d", all[2].Attempts)
	}
	two, _ := s.ListMail(ctx, 2)
	if len(two) != 2 || two[0].ID != ids[2] {
		t.Errorf("ListMail(2) = %+v", two)
	}
	// A zero NextAttempt is due at once.
	id, err := s.EnqueueMail(ctx, store.OutMail{From: "a@x", To: "b@y", Data: []byte("x")})
	noErr(t, "EnqueueMail now", err)
	got, _ = s.ClaimMail(ctx, time.Now().Add(time.Second), time.Now().Add(time.Hour), 10)
	found := false
	for _, m := range got {
		found = found || m.ID == id
	}
	if !found {
		t.Errorf("mail without NextAttempt not due: %+v", got)
	}
}

func testMailClaimConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const msgs, workers = 60, 8
	for i := range msgs {
		_, err := s.EnqueueMail(ctx, store.OutMail{From: "a@x", To: "b@y", Data: []byte("x"), CreatedAt: t0, NextAttempt: t0.Add(time.Duration(i) * time.Millisecond)})
		noErr(t, "EnqueueMail", err)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				got, err := s.ClaimMail(ctx, t0.Add(time.Second), t0.Add(time.Hour), 3)
				if err != nil {
					t.Errorf("ClaimMail: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, m := range got {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != msgs {
		t.Errorf("claimed %d distinct messages, want %d", len(seen), msgs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %d claimed %d times", id, n)
		}
	}
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	events := []store.AuditEvent{
		{Time: t0, Type: "login.failure", Username: "alice", IP: "192.0.2.1"},
		{Time: t0.Add(time.Minute), Type: "login.success", AccountID: "id-a", Username: "alice", IP: "192.0.2.1"},
		{Time: t0.Add(2 * time.Minute), Type: "login.success", AccountID: "id-b", Username: "bob", IP: "192.0.2.2"},
		{Time: t0.Add(3 * time.Minute), Type: "account.lock", AccountID: "id-a", Username: "alice", Actor: "admin:root", Detail: "spam"},
		{Time: t0.Add(3 * time.Minute), Type: "password.change", AccountID: "id-a", Username: "Alice"},
	}
	for _, e := range events {
		noErr(t, "AddAudit", s.AddAudit(ctx, e))
	}
	types := func(f store.AuditFilter) []string {
		t.Helper()
		es, err := s.ListAudit(ctx, f)
		noErr(t, "ListAudit", err)
		out := []string{}
		for _, e := range es {
			out = append(out, e.Type)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.AuditFilter
		want []string
	}{
		{store.AuditFilter{}, []string{"password.change", "account.lock", "login.success", "login.success", "login.failure"}},
		{store.AuditFilter{Username: "ALICE"}, []string{"password.change", "account.lock", "login.success", "login.failure"}},
		{store.AuditFilter{Since: t0.Add(2 * time.Minute)}, []string{"password.change", "account.lock", "login.success"}},
		{store.AuditFilter{Type: "login.success"}, []string{"login.success", "login.success"}},
		{store.AuditFilter{Username: "alice", Type: "login.success"}, []string{"login.success"}},
		{store.AuditFilter{Username: "alice", Since: t0.Add(time.Minute), Limit: 2}, []string{"password.change", "account.lock"}},
		{store.AuditFilter{Username: "nobody"}, []string{}},
	} {
		if got := types(tc.f); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListAudit(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	es, _ := s.ListAudit(ctx, store.AuditFilter{Type: "account.lock"})
	if len(es) != 1 {
		t.Fatalf("account.lock events: %+v", es)
	}
	e := es[0]
	if e.ID == 0 || e.AccountID != "id-a" || e.Username != "alice" || e.Actor != "admin:root" || e.Detail != "spam" {
		t.Errorf("event = %+v", e)
	}
	sameTime(t, "event Time", e.Time, t0.Add(3*time.Minute))
	// A zero time is the current time.
	before := time.Now().Add(-time.Second)
	noErr(t, "AddAudit now", s.AddAudit(ctx, store.AuditEvent{Type: "cli.run"}))
	es, _ = s.ListAudit(ctx, store.AuditFilter{Type: "cli.run"})
	if len(es) != 1 || es[0].Time.Before(before) {
		t.Errorf("event without time = %+v", es)
	}
}
