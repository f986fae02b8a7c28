// Package srs implements the Sender Rewriting Scheme (SRS) as described in
// "Sender Rewriting Scheme" by Shevek (the SRS paper) and implemented by
// libsrs2 and postsrsd, byte for byte compatible with them:
//
//	SRS0=HHHH=TT=origdomain=origlocal@srsdomain
//	SRS1=HHHH=firsthop==HHHH=TT=origdomain=origlocal@srsdomain
//
// HHHH is the first 4 characters of the standard base64 encoding of
// HMAC-SHA1(secret, lowercase(data)), where data is, for SRS0, the time stamp,
// the original domain and the original local part concatenated, and for SRS1
// the first-hop domain and the rest of the SRS0 local part. TT is the day
// number (Unix time / 86400) modulo 1024 in two base32 characters
// (A-Z2-7). A forwarder that receives an address that is already SRS0 or SRS1
// produces an SRS1 address, so that a bounce goes back through the first
// forwarder only.
//
// Hashes are compared case-insensitively (some MTAs change the case of local
// parts) and in constant time; a time stamp is valid from its day to MaxAge
// days later (21 by default, as in postsrsd).
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by Reverse and Forward. They are wrapped: use errors.Is.
var (
	// ErrNotSRS means the address is not an SRS address.
	ErrNotSRS = errors.New("not an SRS address")
	// ErrMalformed means the address starts like an SRS address but lacks a field.
	ErrMalformed = errors.New("malformed SRS address")
	// ErrBadHash means the hash does not match any secret (forged address).
	ErrBadHash = errors.New("SRS hash invalid")
	// ErrExpired means the day stamp is invalid, in the future or too old.
	ErrExpired = errors.New("SRS time stamp expired or invalid")
	// ErrBadAddress means Forward got an address it cannot rewrite.
	ErrBadAddress = errors.New("address cannot be rewritten")
)

const (
	timePrecision = 24 * 60 * 60 // one day, in seconds
	timeBaseBits  = 5
	timeChars     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	timeSlots     = 1 << (2 * timeBaseBits) // two characters: 1024 days
	sep           = '='
	// DefaultMaxAge is postsrsd's validity window, in days.
	DefaultMaxAge = 21
	// DefaultHashLength is the number of hash characters written (postsrsd -n).
	DefaultHashLength = 4
)

// SRS rewrites and reverses addresses. It is safe for concurrent use.
type SRS struct {
	secrets [][]byte // secrets[0] signs; all verify
	domain  string
	maxAge  int
	hashLen int
	hashMin int
	now     func() time.Time
}

// Option configures an SRS.
type Option func(*SRS)

// WithMaxAge sets how many days after its day stamp an address is accepted
// by Reverse (default 21).
func WithMaxAge(days int) Option { return func(s *SRS) { s.maxAge = days } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *SRS) { s.now = now } }

// WithOldSecrets adds secrets that Reverse accepts but Forward never uses:
// the secrets retired by a rotation (postsrsd: the later lines of the
// secret file).
func WithOldSecrets(secrets ...[]byte) Option {
	return func(s *SRS) {
		for _, sec := range secrets {
			s.secrets = append(s.secrets, append([]byte(nil), sec...))
		}
	}
}

// WithHashLength sets the number of hash characters written (default 4) and
// the minimum accepted by Reverse (postsrsd -n and -N).
func WithHashLength(length, minimum int) Option {
	return func(s *SRS) { s.hashLen, s.hashMin = length, minimum }
}

// New returns an SRS that signs with secret and rewrites onto domain (the
// SRS domain, whose SPF record must allow the forwarder).
func New(secret []byte, domain string, opts ...Option) (*SRS, error) {
	if len(secret) == 0 {
		return nil, errors.New("srs: empty secret")
	}
	domain = strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if domain == "" || strings.ContainsAny(domain, "@= \t\r\n") {
		return nil, fmt.Errorf("srs: invalid domain %q", domain)
	}
	s := &SRS{
		secrets: [][]byte{append([]byte(nil), secret...)},
		domain:  domain,
		maxAge:  DefaultMaxAge,
		hashLen: DefaultHashLength,
		hashMin: DefaultHashLength,
		now:     time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	if s.hashLen < 1 || s.hashLen > 27 || s.hashMin < 1 || s.hashMin > s.hashLen {
		return nil, fmt.Errorf("srs: invalid hash length %d (minimum %d)", s.hashLen, s.hashMin)
	}
	if s.maxAge < 0 || s.maxAge >= timeSlots {
		return nil, fmt.Errorf("srs: invalid maximum age %d days", s.maxAge)
	}
	return s, nil
}

// Domain returns the SRS domain.
func (s *SRS) Domain() string { return s.domain }

// IsSRS reports whether addr looks like an SRS0 or SRS1 address (without
// checking its hash).
func IsSRS(addr string) bool {
	return len(addr) >= 5 && strings.EqualFold(addr[:3], "SRS") &&
		(addr[3] == '0' || addr[3] == '1') && strings.IndexByte("=-+", addr[4]) >= 0
}

// Forward rewrites the envelope sender addr onto the SRS domain. The null
// sender ("" or "<>") and addresses already in the SRS domain are returned
// unchanged; an SRS0 or SRS1 address from another forwarder becomes SRS1.
func (s *SRS) Forward(addr string) (string, error) {
	if addr == "" || addr == "<>" {
		return addr, nil
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("srs: forward %q: %w", addr, ErrBadAddress)
	}
	user, host := addr[:at], addr[at+1:]
	if strings.EqualFold(strings.TrimSuffix(host, "."), s.domain) {
		return addr, nil
	}
	if strings.ContainsAny(addr, " \t\r\n") {
		return "", fmt.Errorf("srs: forward %q: %w", addr, ErrBadAddress)
	}
	switch {
	case len(user) > 5 && strings.EqualFold(user[:4], "SRS1") && strings.IndexByte("=-+", user[4]) >= 0:
		// SRS1=HASH=firsthop==rest: keep the first hop, re-sign.
		rest := user[5:]
		i := strings.IndexByte(rest, sep)
		if i < 0 || i == len(rest)-1 {
			return "", fmt.Errorf("srs: forward %q: %w", addr, ErrMalformed)
		}
		rest = rest[i+1:]
		j := strings.IndexByte(rest, sep)
		if j <= 0 || j == len(rest)-1 {
			return "", fmt.Errorf("srs: forward %q: %w", addr, ErrMalformed)
		}
		hop, srsUser := rest[:j], rest[j+1:]
		return s.srs1(hop, srsUser), nil
	case len(user) > 4 && strings.EqualFold(user[:4], "SRS0") && strings.IndexByte("=-+", user[4]) >= 0:
		// SRS0 from another forwarder: it becomes the first hop.
		return s.srs1(host, user[4:]), nil
	}
	stamp := s.stamp()
	h := s.hash(s.secrets[0], stamp, host, user)
	return "SRS0=" + h + "=" + stamp + "=" + host + "=" + user + "@" + s.domain, nil
}

func (s *SRS) srs1(hop, srsUser string) string {
	h := s.hash(s.secrets[0], hop, srsUser)
	return "SRS1=" + h + "=" + hop + "=" + srsUser + "@" + s.domain
}

// Reverse decodes an SRS address and returns the address it stands for:
// the original sender for SRS0, and the first forwarder's SRS0 address for
// SRS1. It checks the hash against every secret and, for SRS0, the day
// stamp. The domain part of addr is not checked: the caller only passes
// addresses it received for the SRS domain.
func (s *SRS) Reverse(addr string) (string, error) {
	if !IsSRS(addr) {
		return "", fmt.Errorf("srs: reverse %q: %w", addr, ErrNotSRS)
	}
	local := addr
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		local = addr[:at]
	}
	fields := local[5:]
	if local[3] == '1' {
		// SRS1=HASH=hop=rest -> SRS0rest@hop
		h, rest, ok := strings.Cut(fields, "=")
		if !ok || h == "" {
			return "", fmt.Errorf("srs: reverse %q: %w", addr, ErrMalformed)
		}
		hop, srsUser, ok := strings.Cut(rest, "=")
		if !ok || hop == "" || srsUser == "" {
			return "", fmt.Errorf("srs: reverse %q: %w", addr, ErrMalformed)
		}
		if err := s.checkHash(h, hop, srsUser); err != nil {
			return "", fmt.Errorf("srs: reverse %q: %w", addr, err)
		}
		return "SRS0" + srsUser + "@" + hop, nil
	}
	// SRS0=HASH=TT=host=user
	parts := strings.SplitN(fields, "=", 4)
	if len(parts) != 4 || parts[0] == "" || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return "", fmt.Errorf("srs: reverse %q: %w", addr, ErrMalformed)
	}
	h, stamp, host, user := parts[0], parts[1], parts[2], parts[3]
	if err := s.checkStamp(stamp); err != nil {
		return "", fmt.Errorf("srs: reverse %q: %w", addr, err)
	}
	if err := s.checkHash(h, stamp, host, user); err != nil {
		return "", fmt.Errorf("srs: reverse %q: %w", addr, err)
	}
	return user + "@" + host, nil
}

func (s *SRS) stamp() string {
	day := s.now().Unix() / timePrecision
	return string([]byte{timeChars[(day>>timeBaseBits)&31], timeChars[day&31]})
}

// checkStamp follows libsrs2's srs_timestamp_check: valid from the stamp's
// day until maxAge days later, modulo 1024 days.
func (s *SRS) checkStamp(stamp string) error {
	if len(stamp) != 2 {
		return ErrExpired
	}
	then := int64(0)
	for i := 0; i < len(stamp); i++ {
		c := stamp[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		off := strings.IndexByte(timeChars, c)
		if off < 0 {
			return ErrExpired
		}
		then = then<<timeBaseBits | int64(off)
	}
	now := (s.now().Unix() / timePrecision) % timeSlots
	for now < then {
		now += timeSlots
	}
	if now <= then+int64(s.maxAge) {
		return nil
	}
	return ErrExpired
}

func (s *SRS) checkHash(h string, data ...string) error {
	// Like libsrs2: at least hashMin characters, compared as a prefix of the
	// hashLen-character hash; a longer hash never matches.
	n := len(h)
	if n < s.hashMin || n > s.hashLen {
		return ErrBadHash
	}
	got := []byte(strings.ToLower(h))
	ok := 0
	for _, sec := range s.secrets {
		want := []byte(strings.ToLower(s.hash(sec, data...)[:n]))
		ok |= subtle.ConstantTimeCompare(got, want)
	}
	if ok != 1 {
		return ErrBadHash
	}
	return nil
}

// hash is libsrs2's srs_hash_create: HMAC-SHA1 over the ASCII-lowercased
// data, standard base64, first hashLen characters.
func (s *SRS) hash(secret []byte, data ...string) string {
	m := hmac.New(sha1.New, secret)
	for _, d := range data {
		m.Write(lowerASCII(d))
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))[:s.hashLen]
}

func lowerASCII(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}
