package resolver_test

import (
	"context"
	"net"
	"testing"

	"github.com/idbridge/idbridge/internal/resolver"
	"github.com/idbridge/idbridge/internal/testlib/dnstest"
)

func TestNewEmptyIsSystem(t *testing.T) {
	r, err := resolver.New(nil)
	if err != nil || r != net.DefaultResolver {
		t.Fatalf("New(nil) = %v, %v; want net.DefaultResolver", r, err)
	}
}

func TestNewInvalid(t *testing.T) {
	for _, s := range []string{"127.0.0.1", ":53", "127.0.0.1:0", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := resolver.New([]string{s}); err == nil {
			t.Errorf("New(%q): no error", s)
		}
	}
}

// TestRotation points the resolver at two servers that answer differently:
// successive lookups reach both.
func TestRotation(t *testing.T) {
	a := dnstest.Start(t, dnstest.Zone{"x.test": {TXT: []string{"a"}}})
	b := dnstest.Start(t, dnstest.Zone{"x.test": {TXT: []string{"b"}}})
	r, err := resolver.New([]string{a.Addr(), b.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 4 {
		txt, err := r.LookupTXT(context.Background(), "x.test")
		if err != nil {
			t.Fatal(err)
		}
		seen[txt[0]] = true
	}
	if got := len(seen); got != 2 {
		t.Errorf("answers came from %d servers, want 2", got)
	}
}
