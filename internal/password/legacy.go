package password

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"strings"
)

// verifyLegacy checks pw against an LDAP-style "{SCHEME}base64" hash.
// Salted schemes append the salt, of any length, after the digest.
func verifyLegacy(pw, stored string) (bool, error) {
	end := strings.IndexByte(stored, '}')
	if end < 0 {
		return false, ErrMalformed
	}
	scheme := strings.ToUpper(stored[1:end])
	var newHash func() hash.Hash
	salted := true
	switch scheme {
	case "SHA":
		newHash, salted = sha1.New, false
	case "SSHA":
		newHash = sha1.New
	case "SHA256":
		newHash, salted = sha256.New, false
	case "SSHA256":
		newHash = sha256.New
	case "SHA512":
		newHash, salted = sha512.New, false
	case "SSHA512":
		newHash = sha512.New
	default:
		return false, fmt.Errorf("%w: {%s}", ErrUnsupported, scheme)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(stored[end+1:]))
	if err != nil {
		return false, ErrMalformed
	}
	h := newHash()
	size := h.Size()
	if len(raw) < size || (!salted && len(raw) != size) || (salted && len(raw) == size) {
		return false, ErrMalformed
	}
	digest, salt := raw[:size], raw[size:]
	h.Write([]byte(pw))
	h.Write(salt)
	return subtle.ConstantTimeCompare(h.Sum(nil), digest) == 1, nil
}
