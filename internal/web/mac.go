package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// keyring signs with the first key and accepts a MAC made by any of them, so
// that keys can be rotated without failing the forms already on screen.
type keyring [][]byte

// sign returns HMAC-SHA256 over purpose and data. purpose separates the uses
// of one key (CSRF tokens, form timestamps), so that a MAC made for one is
// never valid for another.
func (k keyring) sign(key []byte, purpose, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("idbridge " + purpose + "\x00"))
	m.Write([]byte(data))
	return m.Sum(nil)
}

// token returns the base64url MAC of data under the signing key.
func (k keyring) token(purpose, data string) string {
	return base64.RawURLEncoding.EncodeToString(k.sign(k[0], purpose, data))
}

// verify reports, in constant time for each key, whether tok is the base64url
// MAC of data under one of the keys.
func (k keyring) verify(purpose, data, tok string) bool {
	got, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	ok := false
	for _, key := range k {
		if hmac.Equal(got, k.sign(key, purpose, data)) {
			ok = true
		}
	}
	return ok
}
