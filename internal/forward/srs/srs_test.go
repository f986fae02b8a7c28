package srs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Vectors produced by postsrsd 1.10 with the secret "topsecret" and the
// domain fwd.example.org on 2026-12-04 (day stamp JX).
var day = time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)

func newTest(t *testing.T, now time.Time, opts ...Option) *SRS {
	t.Helper()
	opts = append([]Option{WithClock(func() time.Time { return now })}, opts...)
	s, err := New([]byte("topsecret"), "fwd.example.org", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestForward(t *testing.T) {
	s := newTest(t, day)
	tests := []struct{ in, want string }{
		{"alice@origin.test", "SRS0=BJV8=JX=origin.test=alice@fwd.example.org"},
		{"Alice@Origin.test", "SRS0=BJV8=JX=Origin.test=Alice@fwd.example.org"},
		{"SRS0=abcd=TT=origin.test=alice@other.test", "SRS1=wHII=other.test==abcd=TT=origin.test=alice@fwd.example.org"},
		{"SRS1=XXXX=a.test==abcd=TT=origin.test=alice@b.test", "SRS1=kuQv=a.test==abcd=TT=origin.test=alice@fwd.example.org"},
		{"bob@fwd.example.org", "bob@fwd.example.org"},
		{"bob@FWD.example.org", "bob@FWD.example.org"},
		{"", ""},
		{"<>", "<>"},
	}
	for _, tt := range tests {
		got, err := s.Forward(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Forward(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"nodomain", "@x.test", "a@", "a b@x.test", "SRS1=abc@x.test"} {
		if got, err := s.Forward(bad); err == nil {
			t.Errorf("Forward(%q) = %q, want an error", bad, got)
		}
	}
}

func TestReverse(t *testing.T) {
	s := newTest(t, day)
	tests := []struct {
		in, want string
		err      error
	}{
		{"SRS0=BJV8=JX=origin.test=alice@fwd.example.org", "alice@origin.test", nil},
		{"srs0=bjv8=jx=origin.test=alice@fwd.example.org", "alice@origin.test", nil},
		{"SRS0=BJV8=JX=Origin.test=Alice@fwd.example.org", "Alice@Origin.test", nil},
		{"SRS0=BJV9=JX=origin.test=alice@fwd.example.org", "", ErrBadHash},
		{"SRS0=BJV8=JX=origin.test=mallory@fwd.example.org", "", ErrBadHash},
		{"SRS0=BJV=JX=origin.test=alice@fwd.example.org", "", ErrBadHash},
		{"SRS0=BJV8X=JX=origin.test=alice@fwd.example.org", "", ErrBadHash},
		{"SRS0=BJV8=J1=origin.test=alice@fwd.example.org", "", ErrExpired},
		{"SRS0=BJV8=JXX=origin.test=alice@fwd.example.org", "", ErrExpired},
		{"SRS0=BJV8=JX=origin.test@fwd.example.org", "", ErrMalformed},
		{"SRS0=BJV8=JX=origin.test=@fwd.example.org", "", ErrMalformed},
		{"SRS0==JX=origin.test=alice@fwd.example.org", "", ErrMalformed},
		{"SRS1=wHII=other.test==abcd=TT=origin.test=alice@fwd.example.org", "SRS0=abcd=TT=origin.test=alice@other.test", nil},
		{"SRS1=WHII=other.test==abcd=TT=origin.test=alice@fwd.example.org", "SRS0=abcd=TT=origin.test=alice@other.test", nil},
		{"SRS1=wHIJ=other.test==abcd=TT=origin.test=alice@fwd.example.org", "", ErrBadHash},
		{"SRS1=wHII=other.test@fwd.example.org", "", ErrMalformed},
		{"alice@fwd.example.org", "", ErrNotSRS},
		{"SRS2=BJV8=JX=origin.test=alice@fwd.example.org", "", ErrNotSRS},
		{"", "", ErrNotSRS},
	}
	for _, tt := range tests {
		got, err := s.Reverse(tt.in)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("Reverse(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestReverseWindow(t *testing.T) {
	addr, err := newTest(t, day).Forward("alice@origin.test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		at     time.Time
		maxAge int
		err    error
	}{
		{"same day", day, DefaultMaxAge, nil},
		{"last valid day", day.Add(21 * 24 * time.Hour), DefaultMaxAge, nil},
		{"one day too old", day.Add(22 * 24 * time.Hour), DefaultMaxAge, ErrExpired},
		{"day before the stamp", day.Add(-24 * time.Hour), DefaultMaxAge, ErrExpired},
		{"a full cycle later", day.Add(timeSlots * 24 * time.Hour), DefaultMaxAge, nil},
		{"short window", day.Add(3 * 24 * time.Hour), 2, ErrExpired},
		{"short window inside", day.Add(2 * 24 * time.Hour), 2, nil},
	}
	for _, tt := range tests {
		s := newTest(t, tt.at, WithMaxAge(tt.maxAge))
		if _, err := s.Reverse(addr); !errors.Is(err, tt.err) {
			t.Errorf("%s: Reverse = %v, want %v", tt.name, err, tt.err)
		}
	}
}

func TestSecretRotation(t *testing.T) {
	old := newTest(t, day)
	addr, _ := old.Forward("alice@origin.test")
	s, err := New([]byte("newsecret"), "fwd.example.org", WithClock(func() time.Time { return day }),
		WithOldSecrets([]byte("topsecret")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Reverse(addr); err != nil || got != "alice@origin.test" {
		t.Fatalf("Reverse with an old secret = %q, %v", got, err)
	}
	if fwd, _ := s.Forward("alice@origin.test"); fwd == addr {
		t.Fatalf("Forward signed with the old secret: %q", fwd)
	}
	if _, err := old.Reverse(mustForward(t, s, "alice@origin.test")); !errors.Is(err, ErrBadHash) {
		t.Fatalf("old secret accepted the new one's address: %v", err)
	}
}

func mustForward(t *testing.T, s *SRS, a string) string {
	t.Helper()
	f, err := s.Forward(a)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRoundTripSRS1(t *testing.T) {
	// Two forwarders: the first one's SRS0 becomes our SRS1; reversing it
	// yields the first one's address, which the first one reverses.
	first, _ := New([]byte("first"), "first.test", WithClock(func() time.Time { return day }))
	second := newTest(t, day)
	a := mustForward(t, first, "carol@origin.test")
	b := mustForward(t, second, a)
	if !strings.HasPrefix(b, "SRS1=") {
		t.Fatalf("second hop = %q, want SRS1", b)
	}
	c := mustForward(t, first, b) // third hop: stays SRS1, keeps first hop
	if !strings.Contains(c, "=first.test==") {
		t.Fatalf("third hop = %q, want first hop kept", c)
	}
	back, err := second.Reverse(b)
	if err != nil || back != a {
		t.Fatalf("Reverse(%q) = %q, %v; want %q", b, back, err, a)
	}
	orig, err := first.Reverse(back)
	if err != nil || orig != "carol@origin.test" {
		t.Fatalf("Reverse(%q) = %q, %v", back, orig, err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		secret, domain string
		opts           []Option
	}{
		{"", "x.test", nil},
		{"s", "", nil},
		{"s", "a@b", nil},
		{"s", "x.test", []Option{WithMaxAge(-1)}},
		{"s", "x.test", []Option{WithHashLength(2, 3)}},
	} {
		if _, err := New([]byte(tc.secret), tc.domain, tc.opts...); err == nil {
			t.Errorf("New(%q, %q) succeeded", tc.secret, tc.domain)
		}
	}
}

func FuzzReverse(f *testing.F) {
	for _, seed := range []string{
		"SRS0=BJV8=JX=origin.test=alice@fwd.example.org",
		"SRS1=wHII=other.test==abcd=TT=origin.test=alice@fwd.example.org",
		"srs0=====@", "SRS1===@", "SRS0+x=y=z=w", "alice@x",
	} {
		f.Add(seed)
	}
	s, _ := New([]byte("topsecret"), "fwd.example.org", WithClock(func() time.Time { return day }))
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := s.Reverse(addr)
		if err != nil {
			if got != "" {
				t.Fatalf("Reverse(%q) returned %q with error %v", addr, got, err)
			}
			return
		}
		// Whatever decodes must have been signed by us: it re-encodes to an
		// address that decodes to the same value.
		if !IsSRS(addr) || !strings.Contains(got, "@") {
			t.Fatalf("Reverse(%q) = %q", addr, got)
		}
	})
}
