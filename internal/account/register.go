package account

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
)

// RegisterInput is a registration form.
type RegisterInput struct{ Username, FirstName, LastName, Email, Password, IP string }

// Register creates an unverified account and mails the verification link. It
// returns a *ValidationError for invalid fields (including username.taken),
// ErrThrottled when the client IP registers too often, and nil — as on
// success — when the email is already some account's verified email: that
// address then gets the email_taken notice instead.
func (s *Service) Register(ctx context.Context, in RegisterInput) error {
	if err := s.ipLimit(ctx, "register", in.IP); err != nil {
		s.met.Registrations.WithLabelValues("refused").Inc()
		return err
	}
	in.Username = NormalizeUsername(in.Username)
	in.FirstName, in.LastName = strings.TrimSpace(in.FirstName), strings.TrimSpace(in.LastName)
	in.Email = normalizeEmail(in.Email)

	ve := &ValidationError{}
	code := s.usernameCode(in.Username)
	if code == "" {
		switch _, err := s.st.GetAccountByUsername(ctx, in.Username); {
		case err == nil:
			code = "username.taken"
		case !errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("register: %w", err)
		}
	}
	if code != "" {
		ve.add("username", code)
	}
	checkNames(ve, in.FirstName, in.LastName)
	if c := s.emailCode(in.Email); c != "" {
		ve.add("email", c)
	}
	if c := s.passwordCode(in.Password, in.Username); c != "" {
		ve.add("password", c)
	}
	if err := ve.orNil(); err != nil {
		s.met.Registrations.WithLabelValues("refused").Inc()
		return err
	}

	// Hash before looking at the email, so that a taken address answers as
	// slowly as a new one and timing does not tell who has an account.
	hash, err := password.Hash(in.Password, s.cfg.Argon2)
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	switch owner, err := s.st.GetAccountByEmail(ctx, in.Email); {
	case err == nil:
		s.emailTaken(ctx, owner, in.Email, in.IP)
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("register: %w", err)
	}

	id, err := newID()
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	now := s.now()
	a := store.Account{
		ID: id, Username: in.Username, FirstName: in.FirstName, LastName: in.LastName,
		Email: in.Email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	switch err := s.st.CreateAccount(ctx, a); {
	case errors.Is(err, store.ErrAlreadyExists):
		s.met.Registrations.WithLabelValues("refused").Inc()
		return &ValidationError{Fields: []FieldError{{"username", "username.taken"}}}
	case err != nil:
		return fmt.Errorf("register: %w", err)
	}
	s.met.Registrations.WithLabelValues("accepted").Inc()
	s.audit(ctx, "register", a, in.IP, "", "")
	return s.mailVerification(ctx, a)
}

// emailTaken answers a registration or email change naming owner's verified
// address: the address is told, the requester sees nothing different.
func (s *Service) emailTaken(ctx context.Context, owner store.Account, addr, ip string) {
	s.met.Registrations.WithLabelValues("refused").Inc()
	s.audit(ctx, "register.email_taken", owner, ip, "", "")
	s.send(ctx, addr, "email_taken", s.mailData(owner, "url", s.cfg.BaseURL+ForgotPath))
}

// mailVerification mails a fresh registration link to a's email.
func (s *Service) mailVerification(ctx context.Context, a store.Account) error {
	tok, err := s.newToken(ctx, store.TokenVerifyEmail, a.ID, a.Email, s.cfg.VerifyTTL)
	if err != nil {
		return fmt.Errorf("verification mail: %w", err)
	}
	s.send(ctx, a.Email, "verify_email", s.mailData(a, "url", s.link(VerifyPath, tok),
		"expires_hours", fmt.Sprint(int(s.cfg.VerifyTTL.Hours()))))
	return nil
}

// ResendVerification mails a new verification link to the unverified account
// login names (its username or its email). It returns nil whether or not such
// an account exists, unless the store fails; ErrThrottled when the client IP
// asks too often.
func (s *Service) ResendVerification(ctx context.Context, login, ip string) error {
	// Each request writes a token and may search by email: the same per-IP
	// limit as registration and reset, so it cannot be used to fill the store.
	if err := s.ipLimit(ctx, "resend", ip); err != nil {
		return err
	}
	login = strings.TrimSpace(login)
	var cands []store.Account
	if strings.Contains(login, "@") {
		list, err := s.st.ListAccounts(ctx, store.AccountFilter{Query: login, Limit: 50})
		if err != nil {
			return fmt.Errorf("resend verification: %w", err)
		}
		for _, a := range list {
			if strings.EqualFold(a.Email, login) {
				cands = append(cands, a)
			}
		}
	} else if a, err := s.st.GetAccountByUsername(ctx, NormalizeUsername(login)); err == nil {
		cands = append(cands, a)
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("resend verification: %w", err)
	}
	for _, a := range cands {
		if a.EmailVerified || a.Deleted || a.Locked {
			continue
		}
		if err := s.mailVerification(ctx, a); err != nil {
			return fmt.Errorf("resend verification: %w", err)
		}
	}
	return nil
}

// VerifyEmail consumes a registration or change-email token and makes its
// address the account's verified email. ErrInvalidToken when the token is
// unknown, used or expired; ErrEmailInUse (which is also ErrInvalidToken)
// when another account verified that address meanwhile.
func (s *Service) VerifyEmail(ctx context.Context, token, ip string) (store.Account, error) {
	if token == "" {
		return store.Account{}, ErrInvalidToken
	}
	h, now := hashSecret(token), s.now()
	t, err := s.st.ConsumeToken(ctx, h, store.TokenVerifyEmail, now)
	if errors.Is(err, store.ErrNotFound) {
		t, err = s.st.ConsumeToken(ctx, h, store.TokenChangeEmail, now)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Account{}, ErrInvalidToken
	case err != nil:
		return store.Account{}, fmt.Errorf("verify email: %w", err)
	}
	change := t.Kind == store.TokenChangeEmail
	err = s.st.UpdateAccount(ctx, t.AccountID, func(a *store.Account) error {
		if a.Deleted {
			return ErrInvalidToken
		}
		if change {
			if !strings.EqualFold(a.PendingEmail, t.Email) {
				return ErrInvalidToken // superseded by a newer request
			}
			a.Email, a.PendingEmail, a.EmailVerified = a.PendingEmail, "", true
		} else {
			if !strings.EqualFold(a.Email, t.Email) {
				return ErrInvalidToken
			}
			a.EmailVerified = true
		}
		a.UpdatedAt = now
		return nil
	})
	switch {
	case errors.Is(err, store.ErrEmailTaken):
		return store.Account{}, ErrEmailInUse
	case errors.Is(err, ErrInvalidToken), errors.Is(err, store.ErrNotFound):
		return store.Account{}, ErrInvalidToken
	case err != nil:
		return store.Account{}, fmt.Errorf("verify email: %w", err)
	}
	a, err := s.st.GetAccount(ctx, t.AccountID)
	if err != nil {
		return a, fmt.Errorf("verify email: %w", err)
	}
	if change {
		s.audit(ctx, "email.change", a, ip, "", "")
	} else {
		s.audit(ctx, "verify", a, ip, "", "")
	}
	return a, nil
}
