package forward

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in            string
		local, domain string // empty: must be refused
	}{
		{"john@" + vd, "john", vd},
		{"John.Smith@ID.EXAMPLE.TEST", "John.Smith", "ID.EXAMPLE.TEST"},
		{"a+tag@x.test", "a+tag", "x.test"},
		{"SRS0=HHHH=TT=origin.test=alice@" + vd, "SRS0=HHHH=TT=origin.test=alice", vd},
		{"o'brien@x-y.test", "o'brien", "x-y.test"},
		// Routing syntaxes and everything outside the dot-atom grammar.
		{"a%b@" + vd, "", ""},
		{"a!b@" + vd, "", ""},
		{"b!a@" + vd, "", ""},
		{`"a"@` + vd, "", ""},
		{`"a@b"@` + vd, "", ""},
		{"@x:a@" + vd, "", ""},
		{"@x,@y:a@" + vd, "", ""},
		{"a@[127.0.0.1]", "", ""},
		{"a@[IPv6:::1]", "", ""},
		{"a@" + vd + ".", "", ""},
		{"a@@" + vd, "", ""},
		{"a@b@" + vd, "", ""},
		{"a", "", ""},
		{"@" + vd, "", ""},
		{"a@", "", ""},
		{"", "", ""},
		{".a@" + vd, "", ""},
		{"a.@" + vd, "", ""},
		{"a..b@" + vd, "", ""},
		{"a b@" + vd, "", ""},
		{"a\r\nb@" + vd, "", ""},
		{"a(c)@" + vd, "", ""},
		{"a\\b@" + vd, "", ""},
		{"jöhn@" + vd, "", ""},
		{"a@-x.test", "", ""},
		{"a@x-.test", "", ""},
		{"a@x..test", "", ""},
		{"a@x_y.test", "", ""},
		{"a@.x.test", "", ""},
		{strings.Repeat("a", 65) + "@" + vd, "", ""},
		{strings.Repeat("a", 64) + "@" + vd, strings.Repeat("a", 64), vd},
		{"a@" + strings.Repeat("x", 64) + ".test", "", ""},
	}
	for _, tt := range tests {
		local, domain, err := ParseAddress(tt.in)
		if tt.local == "" {
			if err == nil {
				t.Errorf("ParseAddress(%q) = %q, %q; want an error", tt.in, local, domain)
			}
			continue
		}
		if err != nil || local != tt.local || domain != tt.domain {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tt.in, local, domain, err, tt.local, tt.domain)
		}
	}
}

func TestUnderDomain(t *testing.T) {
	tests := []struct {
		d, parent string
		want      bool
	}{
		{"atlassian.net", "atlassian.net", true},
		{"e.Atlassian.NET", "atlassian.net", true},
		{"atlassian.net.", "atlassian.net", true},
		{"evilatlassian.net", "atlassian.net", false},
		{"atlassian.net.evil.test", "atlassian.net", false},
		{"net", "atlassian.net", false},
		{"x.test", "", false},
	}
	for _, tt := range tests {
		if got := underDomain(tt.d, tt.parent); got != tt.want {
			t.Errorf("underDomain(%q, %q) = %v", tt.d, tt.parent, got)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"john@id.example.test", "a%b@x", "a!b@x", `"a"@x`, "@x:a@y", "a@[127.0.0.1]",
		"a@x.", "a@@x", "A.B+c@X-Y.test", "SRS0=h=tt=d.test=u@x.test", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, domain, err := ParseAddress(s)
		if err != nil {
			return
		}
		if local+"@"+domain != s {
			t.Fatalf("%q split into %q and %q", s, local, domain)
		}
		if strings.Count(s, "@") != 1 {
			t.Fatalf("%q accepted with %d @", s, strings.Count(s, "@"))
		}
		if strings.ContainsAny(s, "%!\"[]:\\ \t\r\n()<>,;") {
			t.Fatalf("%q accepted with a forbidden character", s)
		}
		if strings.HasSuffix(domain, ".") || strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
			t.Fatalf("%q accepted with a stray dot", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] > 0x7e {
				t.Fatalf("%q accepted with byte %#x", s, s[i])
			}
		}
	})
}
