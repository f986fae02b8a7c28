package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
)

// RequestReset mails a password-reset link to the account login names (its
// username or verified email). The result is the same whether or not the
// account exists; only ErrThrottled (per client IP) or a store failure is
// returned. An unverified account gets its verification link instead; a
// locked one gets nothing.
func (s *Service) RequestReset(ctx context.Context, login, ip string) error {
	if err := s.ipLimit(ctx, "reset", ip); err != nil {
		return err
	}
	a, err := s.lookup(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("request reset: %w", err)
	case a.Locked:
		return nil
	case !a.EmailVerified:
		return s.mailVerification(ctx, a)
	}
	tok, err := s.newToken(ctx, store.TokenResetPassword, a.ID, a.Email, s.cfg.ResetTTL)
	if err != nil {
		return fmt.Errorf("request reset: %w", err)
	}
	s.audit(ctx, "password.reset_request", a, ip, "", "")
	s.send(ctx, a.Email, "reset_password", s.mailData(a, "url", s.link(ResetPath, tok),
		"expires_minutes", fmt.Sprint(int(s.cfg.ResetTTL.Minutes()))))
	return nil
}

// ResetPassword consumes a reset token and sets the new password; every
// session of the account ends and its other reset links stop working. The
// password is checked before the token is used, so a refused password leaves
// the link valid.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword, ip string) (store.Account, error) {
	if token == "" {
		return store.Account{}, ErrInvalidToken
	}
	if c := s.passwordCode(newPassword, ""); c != "" {
		return store.Account{}, &ValidationError{Fields: []FieldError{{"password", c}}}
	}
	t, err := s.st.ConsumeToken(ctx, hashSecret(token), store.TokenResetPassword, s.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, ErrInvalidToken
	case err != nil:
		return store.Account{}, fmt.Errorf("reset password: %w", err)
	}
	a, err := s.st.GetAccount(ctx, t.AccountID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, ErrInvalidToken
	case err != nil:
		return store.Account{}, fmt.Errorf("reset password: %w", err)
	case a.Deleted || a.Locked || !strings.EqualFold(a.Email, t.Email):
		return store.Account{}, ErrInvalidToken
	}
	if c := s.passwordCode(newPassword, a.Username); c != "" {
		return store.Account{}, &ValidationError{Fields: []FieldError{{"password", c}}}
	}
	if a, err = s.setPassword(ctx, a, newPassword, ""); err != nil {
		return store.Account{}, fmt.Errorf("reset password: %w", err)
	}
	if err := s.st.DeleteAccountTokens(ctx, a.ID, store.TokenResetPassword); err != nil {
		s.log.ErrorContext(ctx, "account: delete reset tokens", "err", err)
	}
	if err := s.st.ResetCounter(ctx, acctKey(a.ID)); err != nil {
		s.log.ErrorContext(ctx, "account: reset throttle", "err", err)
	}
	s.audit(ctx, "password.reset", a, ip, "", "")
	s.send(ctx, a.Email, "password_changed", s.mailData(a, "url", s.cfg.BaseURL+ForgotPath))
	return a, nil
}

// setPassword stores a new hash of pw and ends the account's sessions but keep.
func (s *Service) setPassword(ctx context.Context, a store.Account, pw, keep string) (store.Account, error) {
	hash, err := password.Hash(pw, s.cfg.Argon2)
	if err != nil {
		return a, err
	}
	now := s.now()
	err = s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
		x.PasswordHash, x.UpdatedAt = hash, now
		return nil
	})
	if err != nil {
		return a, err
	}
	a.PasswordHash, a.UpdatedAt = hash, now
	if _, err := s.st.DeleteAccountSessions(ctx, a.ID, keep); err != nil {
		return a, fmt.Errorf("end sessions: %w", err)
	}
	return a, nil
}

// member loads a live account for one of its own actions.
func (s *Service) member(ctx context.Context, accountID string) (store.Account, error) {
	a, err := s.st.GetAccount(ctx, accountID)
	if err != nil {
		return a, fmt.Errorf("account: %w", err)
	}
	if a.Deleted {
		return a, fmt.Errorf("account: %w", store.ErrNotFound)
	}
	return a, nil
}

// ChangePassword sets a new password after checking the current one
// (ErrWrongPassword, also while the throttle asks to wait). Every other
// session than keepSessionID ends.
func (s *Service) ChangePassword(ctx context.Context, accountID, current, newPassword, keepSessionID, ip string) error {
	a, err := s.member(ctx, accountID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if err := s.confirm(ctx, a, current, ip); err != nil {
		return err
	}
	if c := s.passwordCode(newPassword, a.Username); c != "" {
		return &ValidationError{Fields: []FieldError{{"password", c}}}
	}
	if a, err = s.setPassword(ctx, a, newPassword, keepSessionID); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	s.audit(ctx, "password.change", a, ip, "", "")
	s.send(ctx, a.Email, "password_changed", s.mailData(a, "url", s.cfg.BaseURL+ForgotPath))
	return nil
}

// ChangeEmail asks for newEmail to become the account's email. It stays
// PendingEmail until the link mailed to it is followed (VerifyEmail); the
// current address gets a notice. When newEmail is another account's verified
// address, the result looks the same but that address gets the email_taken
// notice instead of a link.
func (s *Service) ChangeEmail(ctx context.Context, accountID, current, newEmail, ip string) error {
	a, err := s.member(ctx, accountID)
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	if err := s.confirm(ctx, a, current, ip); err != nil {
		return err
	}
	newEmail = normalizeEmail(newEmail)
	if c := s.emailCode(newEmail); c != "" {
		return &ValidationError{Fields: []FieldError{{"email", c}}}
	}
	now := s.now()
	if strings.EqualFold(newEmail, a.Email) && a.EmailVerified {
		// Back to the current address: drop a pending change.
		err := s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
			x.PendingEmail, x.UpdatedAt = "", now
			return nil
		})
		if err != nil {
			return fmt.Errorf("change email: %w", err)
		}
		return s.st.DeleteAccountTokens(ctx, a.ID, store.TokenChangeEmail)
	}
	owner, err := s.st.GetAccountByEmail(ctx, newEmail)
	taken := err == nil && owner.ID != a.ID
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("change email: %w", err)
	}
	err = s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
		x.PendingEmail, x.UpdatedAt = newEmail, now
		return nil
	})
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	if err := s.st.DeleteAccountTokens(ctx, a.ID, store.TokenChangeEmail); err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	a.PendingEmail = newEmail
	s.audit(ctx, "email.change.request", a, ip, "", "")
	if taken {
		s.emailTaken(ctx, owner, newEmail, ip)
	} else {
		tok, err := s.newToken(ctx, store.TokenChangeEmail, a.ID, newEmail, s.cfg.VerifyTTL)
		if err != nil {
			return fmt.Errorf("change email: %w", err)
		}
		s.send(ctx, newEmail, "change_email_verify", s.mailData(a, "url", s.link(VerifyPath, tok),
			"new_email", newEmail, "expires_hours", fmt.Sprint(int(s.cfg.VerifyTTL.Hours()))))
	}
	s.send(ctx, a.Email, "email_changed_notice", s.mailData(a, "url", s.cfg.BaseURL+ForgotPath))
	return nil
}

// UpdateProfile changes the account's first and last names.
func (s *Service) UpdateProfile(ctx context.Context, accountID, first, last, ip string) error {
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	ve := &ValidationError{}
	checkNames(ve, first, last)
	if err := ve.orNil(); err != nil {
		return err
	}
	a, err := s.member(ctx, accountID)
	if err != nil {
		return fmt.Errorf("update profile: %w", err)
	}
	now := s.now()
	err = s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
		x.FirstName, x.LastName, x.UpdatedAt = first, last, now
		return nil
	})
	if err != nil {
		return fmt.Errorf("update profile: %w", err)
	}
	s.audit(ctx, "profile.update", a, ip, "", "")
	return nil
}

// Delete turns the account into a tombstone after checking the current
// password: personal data, sessions and tokens go; the username and the
// virtual address are never reissued.
func (s *Service) Delete(ctx context.Context, accountID, current, ip string) error {
	a, err := s.member(ctx, accountID)
	if err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	if err := s.confirm(ctx, a, current, ip); err != nil {
		return err
	}
	if err := s.st.DeleteAccount(ctx, a.ID); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	s.audit(ctx, "account.delete", a, ip, "", "")
	return nil
}
