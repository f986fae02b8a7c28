package password

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var low = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse", low)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q", h)
	}
	tests := []struct {
		pw             string
		p              Params
		ok, needRehash bool
	}{
		{"correct horse", low, true, false},
		{"correct horsE", low, false, false},
		{"", low, false, false},
		{"correct horse", Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1}, true, true},
	}
	for _, tt := range tests {
		ok, re, err := tt.p.Verify(tt.pw, h)
		if err != nil || ok != tt.ok || re != tt.needRehash {
			t.Errorf("Verify(%q, %v) = %v, %v, %v; want %v, %v", tt.pw, tt.p, ok, re, err, tt.ok, tt.needRehash)
		}
	}
	h2, _ := Hash("correct horse", low)
	if h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestDefaultFormat(t *testing.T) {
	if Default.String() != "m=19456,t=2,p=1" {
		t.Fatal(Default.String())
	}
	// A hand-written PHC string must survive a parse and format round trip.
	const known = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0"
	p, err := ParsePHC(known)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != known {
		t.Errorf("round trip %q", p.String())
	}
}

func legacy(scheme string, digest func([]byte) []byte, pw string, salt []byte) string {
	d := digest(append([]byte(pw), salt...))
	return "{" + scheme + "}" + base64.StdEncoding.EncodeToString(append(d, salt...))
}

func TestLegacy(t *testing.T) {
	sha1f := func(b []byte) []byte { h := sha1.Sum(b); return h[:] }
	sha256f := func(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
	sha512f := func(b []byte) []byte { h := sha512.Sum512(b); return h[:] }
	salt28 := []byte("0123456789abcdefghijklmnopqr")
	tests := []struct {
		name, hash string
	}{
		{"SSHA 28-byte salt", legacy("SSHA", sha1f, "s3cret!", salt28)},
		{"SSHA 4-byte salt", legacy("SSHA", sha1f, "s3cret!", []byte("salt"))},
		{"SHA", legacy("SHA", sha1f, "s3cret!", nil)},
		{"SSHA256", legacy("SSHA256", sha256f, "s3cret!", []byte("saltsalt"))},
		{"SSHA512", legacy("SSHA512", sha512f, "s3cret!", salt28)},
		{"lowercase scheme", "{ssha}" + legacy("SSHA", sha1f, "s3cret!", salt28)[6:]},
	}
	for _, tt := range tests {
		ok, re, err := low.Verify("s3cret!", tt.hash)
		if !ok || !re || err != nil {
			t.Errorf("%s: right password: %v %v %v", tt.name, ok, re, err)
		}
		ok, re, err = low.Verify("s3cret", tt.hash)
		if ok || re || err != nil {
			t.Errorf("%s: wrong password: %v %v %v", tt.name, ok, re, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, h := range []string{
		"", "plain", "{SSHA}!!!", "{SSHA}" + base64.StdEncoding.EncodeToString(make([]byte, 20)), // no salt
		"{MD5}abc", "$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=19$m=99999999,t=1,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=19$m=64,t=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=19$m=64,m=64,t=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
		"$argon2id$v=19$m=64,t=1,p=1$c29t$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0",
	} {
		ok, _, err := low.Verify("password", h)
		if ok || err == nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnsupported)) {
			t.Errorf("Verify(%q) = %v, %v; want a malformed/unsupported error", h, ok, err)
		}
	}
}

func TestDummyHash(t *testing.T) {
	d := DummyHash(low)
	if d != DummyHash(low) {
		t.Error("DummyHash not cached")
	}
	if ok, _, err := low.Verify("", d); ok || err != nil {
		t.Errorf("dummy: %v %v", ok, err)
	}
}

func TestCommon(t *testing.T) {
	if n := CommonCount(); n < 1000 {
		t.Errorf("only %d common passwords", n)
	}
	for _, pw := range []string{"password", "PASSWORD", "Password1", "qwerty123", "iloveyou", "12345678", "letmein!", "1q2w3e4r", "2000", "jennifer1"} {
		if !Common(pw) {
			t.Errorf("Common(%q) = false", pw)
		}
	}
	for _, pw := range []string{"correct horse battery", "Tr0ub4dor&3x", "zq8!Lm2#vb"} {
		if Common(pw) {
			t.Errorf("Common(%q) = true", pw)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	h, _ := Hash("x", low)
	for _, s := range []string{h, "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$5m/7rO4xjsLIVSDVHwD5+oawIrmqZzqopvxnsNT3HK0", "$argon2id$v=19$m=0,t=0,p=0$$", "$$$$$", "{SSHA}AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePHC(s)
		if err != nil {
			return
		}
		if p.Params.Validate() != nil {
			t.Fatalf("accepted invalid params %v", p.Params)
		}
		q, err := ParsePHC(p.String())
		if err != nil || q.String() != p.String() {
			t.Fatalf("round trip of %q: %v", s, err)
		}
		// Verify must not panic on what the parser accepts (cheap params only).
		if p.Params.MemoryKiB <= 1024 && p.Params.Iterations <= 4 {
			_, _, _ = low.Verify("x", s)
		}
	})
}
