package account

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// newSecret returns 32 random bytes, base64url without padding.
func newSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// hashSecret is the SHA-256 (hex) the store keeps for a cookie or token secret.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// SessionID returns the store id of the session whose cookie value is cookie:
// its SHA-256, in hex.
func SessionID(cookie string) string { return hashSecret(cookie) }

// newID returns a random version 4 UUID: an account's stable opaque id.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// newToken stores a one-time token of kind for the account and address and
// returns its secret, for the mailed link.
func (s *Service) newToken(ctx context.Context, kind, accountID, email string, ttl time.Duration) (string, error) {
	secret, err := newSecret()
	if err != nil {
		return "", err
	}
	now := s.now()
	err = s.st.CreateToken(ctx, store.Token{
		Hash: hashSecret(secret), Kind: kind, AccountID: accountID, Email: email,
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	})
	if err != nil {
		return "", fmt.Errorf("create %s token: %w", kind, err)
	}
	return secret, nil
}

// link returns an absolute URL on the site for path with the token as query.
func (s *Service) link(path, token string) string {
	return s.cfg.BaseURL + path + "?token=" + token
}

// Paths of the pages the mailed links open (internal/web serves them).
const (
	VerifyPath = "/verify"         // registration and change-email tokens
	ResetPath  = "/password/reset" // reset tokens
	ForgotPath = "/password/forgot"
)

// mailData is the template data for mails about account a.
func (s *Service) mailData(a store.Account, kv ...string) map[string]string {
	d := map[string]string{
		"username":        a.Username,
		"first_name":      a.FirstName,
		"last_name":       a.LastName,
		"email":           a.Email,
		"virtual_address": s.VirtualAddress(a),
		"base_url":        s.cfg.BaseURL,
	}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = kv[i+1]
	}
	return d
}

// send queues a mail; a failure is logged, never shown to the member: the
// action it reports has already happened.
func (s *Service) send(ctx context.Context, to, tmpl string, data map[string]string) {
	if s.mail == nil || to == "" {
		return
	}
	if err := s.mail.Send(ctx, to, tmpl, data); err != nil {
		s.log.ErrorContext(ctx, "account: queue mail", "template", tmpl, "err", err)
	}
}

// audit records a security event; a failure is logged.
func (s *Service) audit(ctx context.Context, typ string, a store.Account, ip, actor, detail string) {
	err := s.st.AddAudit(ctx, store.AuditEvent{
		Time: s.now(), Type: typ, AccountID: a.ID, Username: a.Username,
		IP: ip, Actor: actor, Detail: detail,
	})
	if err != nil {
		s.log.ErrorContext(ctx, "account: audit", "type", typ, "err", err)
	}
}

// lookup finds the account a member means by login: a username, or an email
// that is some account's verified email. Tombstones count as not found.
func (s *Service) lookup(ctx context.Context, login string) (store.Account, error) {
	login = strings.TrimSpace(login)
	var (
		a   store.Account
		err error
	)
	switch {
	case login == "":
		return a, store.ErrNotFound
	case strings.Contains(login, "@"):
		a, err = s.st.GetAccountByEmail(ctx, login)
	default:
		a, err = s.st.GetAccountByUsername(ctx, NormalizeUsername(login))
	}
	if err == nil && a.Deleted {
		err = store.ErrNotFound
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		err = fmt.Errorf("look up account: %w", err)
	}
	return a, err
}

// byUsername loads an account for an administrator, tombstones included.
func (s *Service) byUsername(ctx context.Context, username string) (store.Account, error) {
	a, err := s.st.GetAccountByUsername(ctx, NormalizeUsername(username))
	if err != nil {
		return a, fmt.Errorf("account %q: %w", NormalizeUsername(username), err)
	}
	return a, nil
}

// Throttle keys.
func acctKey(id string) string { return "login:acct:" + id }
func ipKey(ip string) string   { return "login:ip:" + ipKeyPart(ip) }

// ipKeyPart is the part of a client address that throttles count: the
// address itself for IPv4, its /64 for IPv6 (one subscriber usually holds a
// whole /64, so counting single addresses would count nothing).
func ipKeyPart(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// waitUntil returns when the next attempt counted by c is allowed (zero when
// now), with Keycloak's semantics.
func (s *Service) waitUntil(c store.Counter, now time.Time) time.Time {
	t := s.cfg.Throttle
	if c.Count < t.MaxFailures || !c.WindowStart.After(now.Add(-t.ResetAfter)) {
		return time.Time{}
	}
	wait := t.WaitIncrement * time.Duration(c.Count/t.MaxFailures)
	if wait > t.MaxWait || wait < 0 {
		wait = t.MaxWait
	}
	return c.LastHit.Add(wait)
}

// charge counts one attempt on each of keys (an IP first, then an account),
// each atomically with the decision whether it may go ahead (store.Attempt).
// It returns false when one of them asks to wait; the attempts already
// counted for this call are then taken back, so a refused attempt counts
// nowhere.
func (s *Service) charge(ctx context.Context, now time.Time, keys ...string) (bool, error) {
	allow := func(c store.Counter) bool { return !now.Before(s.waitUntil(c, now)) }
	var counted []string
	for _, k := range keys {
		if k == "" {
			continue
		}
		_, ok, err := s.st.Attempt(ctx, k, now, s.cfg.Throttle.ResetAfter, allow)
		if err == nil && ok {
			counted = append(counted, k)
			continue
		}
		for _, c := range counted {
			if rerr := s.st.Release(ctx, c); rerr != nil {
				s.log.ErrorContext(ctx, "account: release throttle", "err", rerr)
			}
		}
		if err != nil {
			return false, fmt.Errorf("throttle: %w", err)
		}
		return false, nil
	}
	return true, nil
}

// ipLimit applies the per-IP throttle of a form (registration, reset): every
// request counts, and past the limit the same waits as for logins apply.
func (s *Service) ipLimit(ctx context.Context, form, ip string) error {
	if ip == "" {
		return nil
	}
	key := form + ":ip:" + ipKeyPart(ip)
	ok, err := s.charge(ctx, s.now(), key)
	if err != nil {
		return fmt.Errorf("count %s: %w", form, err)
	}
	if !ok {
		return ErrThrottled
	}
	return nil
}
