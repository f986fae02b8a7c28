package dnstest_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/idbridge/idbridge/internal/resolver"
	"github.com/idbridge/idbridge/internal/testlib/dnstest"
)

func TestServe(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 600)
	srv := dnstest.Start(t, dnstest.Zone{
		"Example.test.": {
			A:   []string{"192.0.2.1"},
			MX:  []dnstest.MX{{10, "mx.example.test"}},
			TXT: []string{"v=spf1 ip4:192.0.2.0/24 -all"},
		},
		"sel._domainkey.example.test": {TXT: []string{long}},
		"broken.test":                 {Fail: true},
	})
	r, err := resolver.New([]string{srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	ips, err := r.LookupHost(ctx, "example.test")
	if err != nil || !slices.Equal(ips, []string{"192.0.2.1"}) {
		t.Errorf("LookupHost = %v, %v", ips, err)
	}
	mx, err := r.LookupMX(ctx, "EXAMPLE.test")
	if err != nil || len(mx) != 1 || mx[0].Host != "mx.example.test." || mx[0].Pref != 10 {
		t.Errorf("LookupMX = %v, %v", mx, err)
	}
	txt, err := r.LookupTXT(ctx, "example.test")
	if err != nil || !slices.Equal(txt, []string{"v=spf1 ip4:192.0.2.0/24 -all"}) {
		t.Errorf("LookupTXT = %v, %v", txt, err)
	}
	// Over 512 bytes: truncated over UDP, then fetched over TCP and joined.
	txt, err = r.LookupTXT(ctx, "sel._domainkey.example.test")
	if err != nil || !slices.Equal(txt, []string{long}) {
		t.Errorf("LookupTXT long = %d records, %v", len(txt), err)
	}

	var dnsErr *net.DNSError
	_, err = r.LookupTXT(ctx, "absent.test")
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("absent name: %v, want not found", err)
	}
	_, err = r.LookupTXT(ctx, "broken.test")
	if !errors.As(err, &dnsErr) || dnsErr.IsNotFound {
		t.Errorf("SERVFAIL name: %v, want a temporary error", err)
	}

	srv.Set("late.test", dnstest.Records{TXT: []string{"hello"}})
	if txt, err := r.LookupTXT(ctx, "late.test"); err != nil || !slices.Equal(txt, []string{"hello"}) {
		t.Errorf("after Set: %v, %v", txt, err)
	}
}
