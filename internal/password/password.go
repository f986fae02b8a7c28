// Package password hashes and verifies member passwords. New hashes are
// argon2id in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash), so that the parameters can be
// raised later and old hashes upgraded at the next login. Verify also accepts
// the legacy LDAP schemes ({SSHA}, {SHA}, {SSHA256}, {SSHA512}) that an
// import may bring, and reports them as needing a rehash.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// Default is OWASP's recommended minimum for argon2id (m=19 MiB, t=2, p=1).
var Default = Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
	// Limits on parsed parameters, so that a hostile or corrupt hash cannot make
	// Verify allocate gigabytes or loop for minutes.
	maxMemoryKiB  = 4 << 20 // 4 GiB
	maxIterations = 1000
	maxKeyLen     = 1024
	maxSaltLen    = 1024
)

// ErrMalformed means a stored hash could not be parsed.
var ErrMalformed = errors.New("password: malformed hash")

// ErrUnsupported means a stored hash uses a scheme this package does not verify.
var ErrUnsupported = errors.New("password: unsupported hash scheme")

// Validate reports whether p is usable.
func (p Params) Validate() error {
	switch {
	case p.MemoryKiB < 8*uint32(max(p.Parallelism, 1)):
		return fmt.Errorf("password: argon2 memory %d KiB is below 8*parallelism", p.MemoryKiB)
	case p.MemoryKiB > maxMemoryKiB:
		return fmt.Errorf("password: argon2 memory %d KiB is too large", p.MemoryKiB)
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("password: argon2 iterations %d out of range", p.Iterations)
	case p.Parallelism < 1:
		return fmt.Errorf("password: argon2 parallelism must be at least 1")
	}
	return nil
}

// String returns the parameters as in a PHC string: "m=19456,t=2,p=1".
func (p Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.MemoryKiB, p.Iterations, p.Parallelism)
}

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string of pw with a fresh random salt.
func Hash(pw string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, p, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// PHC is a parsed argon2id PHC string.
type PHC struct {
	Params Params
	Salt   []byte
	Key    []byte
}

// ParsePHC parses an argon2id PHC string. Only version 19 is accepted.
func ParsePHC(s string) (PHC, error) {
	var h PHC
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return h, ErrMalformed
	}
	if parts[2] != "v=19" {
		return h, fmt.Errorf("%w: argon2 version %q", ErrUnsupported, parts[2])
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return h, ErrMalformed
	}
	var seen [3]bool
	for _, f := range kv {
		name, val, ok := strings.Cut(f, "=")
		if !ok || val == "" || (len(val) > 1 && val[0] == '0') {
			return h, ErrMalformed
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return h, ErrMalformed
		}
		switch {
		case name == "m" && !seen[0]:
			seen[0] = true
			h.Params.MemoryKiB = uint32(n)
		case name == "t" && !seen[1]:
			seen[1] = true
			h.Params.Iterations = uint32(n)
		case name == "p" && !seen[2] && n <= 255:
			seen[2] = true
			h.Params.Parallelism = uint8(n)
		default:
			return h, ErrMalformed
		}
	}
	if err := h.Params.Validate(); err != nil {
		return h, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var err error
	if h.Salt, err = b64.Strict().DecodeString(parts[4]); err != nil || len(h.Salt) < 8 || len(h.Salt) > maxSaltLen {
		return h, ErrMalformed
	}
	if h.Key, err = b64.Strict().DecodeString(parts[5]); err != nil || len(h.Key) < 16 || len(h.Key) > maxKeyLen {
		return h, ErrMalformed
	}
	return h, nil
}

// String formats h back as a PHC string.
func (h PHC) String() string {
	return fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, h.Params, b64.EncodeToString(h.Salt), b64.EncodeToString(h.Key))
}

// Verify checks pw against the stored hash phc, wanting the Default
// parameters; see Params.Verify.
func Verify(pw, phc string) (ok, needsRehash bool, err error) {
	return Default.Verify(pw, phc)
}

// Verify checks pw against the stored hash phc. ok is true when the password
// matches; needsRehash is true when it matches but the hash should be replaced
// by Hash(pw, p): a legacy scheme, other parameters, or another key or salt
// length. The comparison is constant-time. err reports a malformed or
// unsupported hash, never a mere mismatch.
func (p Params) Verify(pw, phc string) (ok, needsRehash bool, err error) {
	if strings.HasPrefix(phc, "{") {
		ok, err = verifyLegacy(pw, phc)
		return ok, ok, err
	}
	h, err := ParsePHC(phc)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey([]byte(pw), h.Salt, h.Params.Iterations, h.Params.MemoryKiB, h.Params.Parallelism, uint32(len(h.Key)))
	if subtle.ConstantTimeCompare(key, h.Key) != 1 {
		return false, false, nil
	}
	return true, h.Params != p || len(h.Key) != keyLen || len(h.Salt) < saltLen, nil
}

var (
	dummyMu sync.Mutex
	dummies = map[Params]string{}
)

// DummyHash returns a PHC string at parameters p with a random salt and a
// random key, made once per parameter set. Verify a password against it when
// the account does not exist: the check costs exactly one argon2id hash, as
// for a known user, and never matches. Making it costs no hash at all, so
// start-up neither waits for one nor keeps its memory.
func DummyHash(p Params) string {
	dummyMu.Lock()
	defer dummyMu.Unlock()
	if h, ok := dummies[p]; ok {
		return h
	}
	asked := p
	if p.Validate() != nil {
		p = Default // invalid parameters: the defaults, so Verify still works
	}
	salt, key := make([]byte, saltLen), make([]byte, keyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	h := fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, p, b64.EncodeToString(salt), b64.EncodeToString(key))
	dummies[asked] = h
	return h
}
