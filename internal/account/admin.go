package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
)

// AdminGroup is the group whose members are administrators.
const AdminGroup = "admins"

// CreateInput is an account an administrator or the CLI creates.
type CreateInput struct {
	Username, FirstName, LastName, Email, Password string
	Admin, Unverified                              bool
}

// Create makes an account directly, verified unless in.Unverified (then the
// verification link is mailed). It applies the registration rules, and says
// email.taken plainly: an administrator may know.
func (s *Service) Create(ctx context.Context, in CreateInput, actor string) (store.Account, error) {
	in.Username = NormalizeUsername(in.Username)
	in.FirstName, in.LastName = strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName)
	in.Email = normalizeEmail(in.Email)
	ve := &ValidationError{}
	if c := s.usernameCode(in.Username); c != "" {
		ve.add("username", c)
	}
	checkNames(ve, in.FirstName, in.LastName)
	if c := s.emailCode(in.Email); c != "" {
		ve.add("email", c)
	}
	if c := s.passwordCode(in.Password, in.Username); c != "" {
		ve.add("password", c)
	}
	if err := ve.orNil(); err != nil {
		return store.Account{}, err
	}
	hash, err := password.Hash(in.Password, s.cfg.Argon2)
	if err != nil {
		return store.Account{}, fmt.Errorf("create account: %w", err)
	}
	id, err := newID()
	if err != nil {
		return store.Account{}, fmt.Errorf("create account: %w", err)
	}
	now := s.now()
	a := store.Account{
		ID: id, Username: in.Username, FirstName: in.FirstName, LastName: in.LastName,
		Email: in.Email, EmailVerified: !in.Unverified, PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	switch err := s.st.CreateAccount(ctx, a); {
	case errors.Is(err, store.ErrAlreadyExists):
		return store.Account{}, &ValidationError{Fields: []FieldError{{"username", "username.taken"}}}
	case errors.Is(err, store.ErrEmailTaken):
		return store.Account{}, &ValidationError{Fields: []FieldError{{"email", "email.taken"}}}
	case err != nil:
		return store.Account{}, fmt.Errorf("create account: %w", err)
	}
	s.audit(ctx, "admin.create", a, "", actor, "")
	if in.Admin {
		if err := s.st.AddToGroup(ctx, a.ID, AdminGroup); err != nil {
			return a, fmt.Errorf("create account: %w", err)
		}
		s.audit(ctx, "admin.group", a, "", actor, "+"+AdminGroup)
	}
	if in.Unverified {
		if err := s.mailVerification(ctx, a); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Get returns the account (tombstones included) and its groups.
func (s *Service) Get(ctx context.Context, username string) (store.Account, []string, error) {
	a, err := s.byUsername(ctx, username)
	if err != nil {
		return a, nil, err
	}
	g, err := s.st.Groups(ctx, a.ID)
	if err != nil {
		return a, nil, fmt.Errorf("groups: %w", err)
	}
	return a, g, nil
}

// List returns the accounts f selects.
func (s *Service) List(ctx context.Context, f store.AccountFilter) ([]store.Account, error) {
	l, err := s.st.ListAccounts(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return l, nil
}

// adminUpdate applies fn to the live account username and audits typ.
func (s *Service) adminUpdate(ctx context.Context, username, actor, typ string, fn func(*store.Account)) (store.Account, error) {
	a, err := s.byUsername(ctx, username)
	if err != nil {
		return a, err
	}
	if a.Deleted {
		return a, fmt.Errorf("account %q is deleted: %w", a.Username, store.ErrNotFound)
	}
	now := s.now()
	err = s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
		fn(x)
		x.UpdatedAt = now
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("%s: %w", typ, err)
	}
	s.audit(ctx, typ, a, "", actor, "")
	return a, nil
}

// Lock locks the account: no login, no SSO, no forwarding; its sessions end.
func (s *Service) Lock(ctx context.Context, username, actor string) error {
	a, err := s.adminUpdate(ctx, username, actor, "admin.lock", func(x *store.Account) { x.Locked = true })
	if err != nil {
		return err
	}
	if _, err := s.st.DeleteAccountSessions(ctx, a.ID, ""); err != nil {
		return fmt.Errorf("lock: end sessions: %w", err)
	}
	return nil
}

// Unlock lifts a lock.
func (s *Service) Unlock(ctx context.Context, username, actor string) error {
	_, err := s.adminUpdate(ctx, username, actor, "admin.unlock", func(x *store.Account) { x.Locked = false })
	return err
}

// SetPassword sets a password for the member (password rules apply); every
// session ends and the account's throttle counter restarts.
func (s *Service) SetPassword(ctx context.Context, username, pw, actor string) error {
	a, err := s.byUsername(ctx, username)
	if err != nil {
		return err
	}
	if a.Deleted {
		return fmt.Errorf("account %q is deleted: %w", a.Username, store.ErrNotFound)
	}
	if c := s.passwordCode(pw, a.Username); c != "" {
		return &ValidationError{Fields: []FieldError{{"password", c}}}
	}
	if a, err = s.setPassword(ctx, a, pw, ""); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	if err := s.st.ResetCounter(ctx, acctKey(a.ID)); err != nil {
		s.log.ErrorContext(ctx, "account: reset throttle", "err", err)
	}
	s.audit(ctx, "admin.set_password", a, "", actor, "")
	return nil
}

// AdminDelete turns the account into a tombstone.
func (s *Service) AdminDelete(ctx context.Context, username, actor string) error {
	a, err := s.byUsername(ctx, username)
	if err != nil {
		return err
	}
	if a.Deleted {
		return nil
	}
	if err := s.st.DeleteAccount(ctx, a.ID); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	s.audit(ctx, "admin.delete", a, "", actor, "")
	return nil
}

// ValidGroup reports whether g is a usable group name: 1 to 64 of a-z, 0-9,
// '.', '-', '_', starting with a letter or digit.
func ValidGroup(g string) bool {
	if g == "" || len(g) > 64 || g[0] == '.' || g[0] == '-' || g[0] == '_' {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SetGroup adds the account to group or removes it.
func (s *Service) SetGroup(ctx context.Context, username, group string, member bool, actor string) error {
	group = strings.ToLower(strings.TrimSpace(group))
	if !ValidGroup(group) {
		return fmt.Errorf("invalid group name %q", group)
	}
	a, err := s.byUsername(ctx, username)
	if err != nil {
		return err
	}
	if a.Deleted {
		return fmt.Errorf("account %q is deleted: %w", a.Username, store.ErrNotFound)
	}
	detail := "+" + group
	if member {
		err = s.st.AddToGroup(ctx, a.ID, group)
	} else {
		detail = "-" + group
		err = s.st.RemoveFromGroup(ctx, a.ID, group)
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("set group: %w", err)
	}
	s.audit(ctx, "admin.group", a, "", actor, detail)
	return nil
}

// IsAdmin reports whether the account is in the admins group.
func (s *Service) IsAdmin(ctx context.Context, accountID string) (bool, error) {
	g, err := s.Groups(ctx, accountID)
	if err != nil {
		return false, err
	}
	for _, x := range g {
		if x == AdminGroup {
			return true, nil
		}
	}
	return false, nil
}

// Groups returns the account's groups, sorted.
func (s *Service) Groups(ctx context.Context, accountID string) ([]string, error) {
	g, err := s.st.Groups(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	return g, nil
}

// Audit returns the audit events f selects, newest first.
func (s *Service) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	l, err := s.st.ListAudit(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return l, nil
}

// Maintain purges unverified accounts older than UnverifiedTTL (freeing their
// usernames), expired sessions, tokens and ephemeral values. Run it
// periodically; every node may.
func (s *Service) Maintain(ctx context.Context) error {
	now := s.now()
	var errs []error
	if n, err := s.st.PurgeUnverified(ctx, now.Add(-s.cfg.UnverifiedTTL)); err != nil {
		errs = append(errs, fmt.Errorf("purge unverified: %w", err))
	} else if n > 0 {
		s.log.InfoContext(ctx, "account: purged unverified registrations", "count", n)
	}
	if _, err := s.st.DeleteExpiredSessions(ctx, now, now.Add(-s.cfg.IdleTimeout)); err != nil {
		errs = append(errs, fmt.Errorf("expire sessions: %w", err))
	}
	if _, err := s.st.DeleteExpiredTokens(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("expire tokens: %w", err))
	}
	if _, err := s.st.DeleteExpiredEphemeral(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("expire ephemeral values: %w", err))
	}
	return errors.Join(errs...)
}
