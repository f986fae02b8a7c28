package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
)

// Login checks a password login. login is a username or a verified email.
// ErrInvalidCredentials for an unknown user, a wrong password, a locked
// account, and any attempt while the account's or the IP's throttle asks to
// wait (the password is then not checked, but a dummy hash is computed so
// that the answer takes as long); ErrNotVerified only after a
// correct password. The caller starts the session (StartSession).
func (s *Service) Login(ctx context.Context, login, pw, ip, userAgent string) (store.Account, error) {
	now := s.now()
	ipk := ""
	if ip != "" {
		ipk = ipKey(ip)
	}
	a, err := s.lookup(ctx, login)
	if errors.Is(err, store.ErrNotFound) {
		// The attempt counts against the IP before the (dummy) check, in
		// the same atomic step as the decision to allow it.
		allowed, err := s.charge(ctx, now, ipk)
		if err != nil {
			return store.Account{}, fmt.Errorf("login: %w", err)
		}
		s.dummyVerify(pw) // a throttled answer takes as long as a checked one
		if !allowed {
			s.met.Logins.WithLabelValues("throttled").Inc()
			s.audit(ctx, "login.throttled", store.Account{}, ip, "", "ip")
			return store.Account{}, ErrInvalidCredentials
		}
		s.met.Logins.WithLabelValues("failure").Inc()
		s.audit(ctx, "login.failure", store.Account{}, ip, "", "unknown user")
		return store.Account{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("login: %w", err)
	}

	ok, rehash, err := s.checkPassword(ctx, a, pw, ip, now)
	if err != nil {
		return store.Account{}, fmt.Errorf("login: %w", err)
	}
	switch {
	case ok == throttledPw:
		s.met.Logins.WithLabelValues("throttled").Inc()
		s.audit(ctx, "login.throttled", a, ip, "", "")
		return store.Account{}, ErrInvalidCredentials
	case ok == wrongPw:
		s.met.Logins.WithLabelValues("failure").Inc()
		s.audit(ctx, "login.failure", a, ip, "", "wrong password")
		return store.Account{}, ErrInvalidCredentials
	case a.Locked:
		s.met.Logins.WithLabelValues("locked").Inc()
		s.audit(ctx, "login.failure", a, ip, "", "locked")
		return store.Account{}, ErrInvalidCredentials
	case !a.EmailVerified:
		s.met.Logins.WithLabelValues("unverified").Inc()
		s.audit(ctx, "login.failure", a, ip, "", "not verified")
		return store.Account{}, ErrNotVerified
	}

	newHash := ""
	if rehash {
		if newHash, err = password.Hash(pw, s.cfg.Argon2); err != nil {
			s.log.ErrorContext(ctx, "account: rehash", "err", err)
			newHash = ""
		}
	}
	oldHash := a.PasswordHash
	err = s.st.UpdateAccount(ctx, a.ID, func(x *store.Account) error {
		x.LastLoginAt = now
		if newHash != "" && x.PasswordHash == oldHash {
			x.PasswordHash = newHash
		}
		return nil
	})
	if err != nil {
		return store.Account{}, fmt.Errorf("login: %w", err)
	}
	a.LastLoginAt = now
	if newHash != "" {
		a.PasswordHash = newHash
	}
	s.met.Logins.WithLabelValues("success").Inc()
	s.audit(ctx, "login.success", a, ip, "", userAgentDetail(userAgent))
	return a, nil
}

func userAgentDetail(ua string) string {
	if len(ua) > 200 {
		ua = ua[:200]
	}
	return ua
}

type pwResult int

const (
	wrongPw pwResult = iota
	rightPw
	throttledPw
)

// checkPassword checks pw against a's hash behind the account and IP
// throttles. It is the only place a member's password is compared. The
// attempt is counted on both before the hash is computed, atomically with the
// decision to allow it (store.Attempt), so that concurrent guesses on any
// number of nodes cannot all slip past one check; a right password then
// clears the account's count and takes the attempt back from the IP's.
func (s *Service) checkPassword(ctx context.Context, a store.Account, pw, ip string, now time.Time) (pwResult, bool, error) {
	ipk := ""
	if ip != "" {
		ipk = ipKey(ip)
	}
	allowed, err := s.charge(ctx, now, ipk, acctKey(a.ID))
	if err != nil {
		return wrongPw, false, err
	}
	if !allowed {
		// Spend the time of a real check, so that a fast answer never tells
		// an attacker that a username exists and is being throttled.
		s.dummyVerify(pw)
		return throttledPw, false, nil
	}
	var ok, rehash bool
	if a.PasswordHash == "" || strings.HasPrefix(a.PasswordHash, "{") {
		// No password, or a legacy hash ({SSHA} from an LDAP import): one
		// SHA-1 would answer far faster than the argon2id an unknown user
		// costs, and tell who exists. Spend that argon2id here too.
		s.dummyVerify(pw)
	}
	if a.PasswordHash != "" {
		if ok, rehash, err = s.cfg.Argon2.Verify(pw, a.PasswordHash); err != nil {
			s.log.ErrorContext(ctx, "account: stored password hash unusable", "account", a.ID, "err", err)
			ok = false
		}
	}
	if !ok {
		return wrongPw, false, nil
	}
	if err := s.st.ResetCounter(ctx, acctKey(a.ID)); err != nil {
		s.log.ErrorContext(ctx, "account: reset throttle", "err", err)
	}
	if ipk != "" {
		if err := s.st.Release(ctx, ipk); err != nil {
			s.log.ErrorContext(ctx, "account: release ip throttle", "err", err)
		}
	}
	return rightPw, rehash, nil
}

// confirm checks the current password a member gives to confirm a change:
// ErrWrongPassword when wrong or throttled.
func (s *Service) confirm(ctx context.Context, a store.Account, pw, ip string) error {
	r, _, err := s.checkPassword(ctx, a, pw, ip, s.now())
	if err != nil {
		return err
	}
	if r != rightPw {
		s.audit(ctx, "password.confirm_failure", a, ip, "", "")
		return ErrWrongPassword
	}
	return nil
}

// StartSession creates a session for a, just logged in, and returns the
// cookie value: 32 random bytes, base64url. The store keeps its SHA-256.
func (s *Service) StartSession(ctx context.Context, a store.Account, ip, userAgent string) (string, store.Session, error) {
	cookie, err := newSecret()
	if err != nil {
		return "", store.Session{}, fmt.Errorf("start session: %w", err)
	}
	now := s.now()
	sess := store.Session{
		ID: SessionID(cookie), AccountID: a.ID, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(s.cfg.AbsoluteLifetime), AuthnAt: now, IP: ip, UserAgent: userAgentDetail(userAgent),
	}
	if err := s.st.CreateSession(ctx, sess); err != nil {
		return "", store.Session{}, fmt.Errorf("start session: %w", err)
	}
	return cookie, sess, nil
}

// touchEvery is how stale LastSeenAt may get before Session writes it.
func (s *Service) touchEvery() time.Duration {
	return min(time.Minute, s.cfg.IdleTimeout/10)
}

// Session returns the live session of the cookie and its account, or
// store.ErrNotFound. A session past its idle timeout or absolute lifetime, or
// whose account is locked, deleted or unverified, is deleted. The throttle
// plays no part here.
func (s *Service) Session(ctx context.Context, cookie string) (store.Session, store.Account, error) {
	if cookie == "" {
		return store.Session{}, store.Account{}, store.ErrNotFound
	}
	id, now := SessionID(cookie), s.now()
	sess, err := s.st.GetSession(ctx, id)
	if err != nil {
		return store.Session{}, store.Account{}, err
	}
	end := func() (store.Session, store.Account, error) {
		if err := s.st.DeleteSession(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Session{}, store.Account{}, fmt.Errorf("end session: %w", err)
		}
		return store.Session{}, store.Account{}, store.ErrNotFound
	}
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= s.cfg.IdleTimeout {
		return end()
	}
	a, err := s.st.GetAccount(ctx, sess.AccountID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (a.Locked || a.Deleted || !a.EmailVerified) {
		return end()
	}
	if err != nil {
		return store.Session{}, store.Account{}, fmt.Errorf("session account: %w", err)
	}
	if now.Sub(sess.LastSeenAt) >= s.touchEvery() {
		err := s.st.UpdateSession(ctx, id, func(x *store.Session) error {
			x.LastSeenAt = now
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			return store.Session{}, store.Account{}, err
		}
		if err != nil {
			return store.Session{}, store.Account{}, fmt.Errorf("touch session: %w", err)
		}
		sess.LastSeenAt = now
	}
	return sess, a, nil
}

// Logout ends the cookie's session; an unknown cookie is not an error.
func (s *Service) Logout(ctx context.Context, cookie string) error {
	if cookie == "" {
		return nil
	}
	if err := s.st.DeleteSession(ctx, SessionID(cookie)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// ListSessions returns the account's sessions.
func (s *Service) ListSessions(ctx context.Context, accountID string) ([]store.Session, error) {
	l, err := s.st.ListAccountSessions(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return l, nil
}

// EndSession ends one of the account's own sessions; store.ErrNotFound if the
// session is not the account's.
func (s *Service) EndSession(ctx context.Context, accountID, sessionID string) error {
	sess, err := s.st.GetSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if sess.AccountID != accountID {
		return store.ErrNotFound
	}
	if err := s.st.DeleteSession(ctx, sessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}
