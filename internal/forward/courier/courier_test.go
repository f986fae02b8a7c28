package courier

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// fakeDNS is an injected resolver: MX records and host addresses by name.
type fakeDNS struct {
	mx    map[string][]*net.MX
	hosts map[string][]string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (f *fakeDNS) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	if mx, ok := f.mx[name]; ok {
		return mx, nil
	}
	if name == "dnsfail.test" {
		return nil, &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	return nil, notFound(name)
}

func (f *fakeDNS) LookupHost(_ context.Context, name string) ([]string, error) {
	if h, ok := f.hosts[name]; ok {
		return h, nil
	}
	return nil, notFound(name)
}

const testMsg = "Received: from mta.atlassian.test by mx.id.test; Fri, 4 Dec 2026 20:00:00 +0000\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=atlassian.test; s=x; b=abc\r\n" +
	"From: Jira <jira@atlassian.test>\r\nTo: john@id.test\r\nSubject: [JIRA] (TRUNK-1) caf\xc3\xa9\r\n" +
	"Message-ID: <m1@atlassian.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
	"Line one\r\n.leading dot\r\n..two dots\r\n  indented  \r\n\r\ntrailing spaces   \r\n8bit: \xe2\x82\xac\r\n"

func TestDirect(t *testing.T) {
	s := startSink(t)
	dns := &fakeDNS{
		mx: map[string][]*net.MX{
			// mx1 is preferred but refuses connections (nothing listens on
			// 127.0.0.2); mx2 is the sink.
			"dest.test":     {{Host: "mx1.dest.test.", Pref: 10}, {Host: "mx2.dest.test.", Pref: 20}},
			"nullmx.test":   {{Host: ".", Pref: 0}},
			"deadmx.test":   {{Host: "mx1.dest.test.", Pref: 10}},
			"nohostmx.test": {{Host: "gone.test.", Pref: 10}},
		},
		hosts: map[string][]string{
			"mx1.dest.test": {"127.0.0.2"},
			"mx2.dest.test": {s.host},
			"implicit.test": {s.host}, // no MX: delivered to the A record
		},
	}
	d := &Direct{Resolver: dns, Hostname: "mx.id.test", Port: s.port}
	tests := []struct {
		name, to  string
		delivered bool
		permanent bool
	}{
		{"MX preference and fallback", "real@dest.test", true, false},
		{"implicit MX", "real@implicit.test", true, false},
		{"null MX", "real@nullmx.test", false, true},
		{"no such domain", "real@nxdomain.test", false, true},
		{"MX refuses connections", "real@deadmx.test", false, false},
		{"MX host has no address", "real@nohostmx.test", false, false},
		{"DNS failure", "real@dnsfail.test", false, false},
		{"address literal", "real@[127.0.0.1]", false, true},
	}
	kept := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, perm := d.Deliver(context.Background(), "SRS0=abcd=JX=atlassian.test=jira@id.test", tt.to, []byte(testMsg))
			if (err == nil) != tt.delivered || perm != tt.permanent {
				t.Fatalf("Deliver = %v, permanent %v; want delivered %v, permanent %v", err, perm, tt.delivered, tt.permanent)
			}
			if !tt.delivered {
				return
			}
			kept++
			msgs := s.messages(t)
			if len(msgs) != kept {
				t.Fatalf("sink kept %d messages, want %d", len(msgs), kept)
			}
			var m *dumped
			for i := range msgs {
				if msgs[i].rcptTo == "<"+tt.to+">" {
					m = &msgs[i]
				}
			}
			if m == nil || !strings.HasPrefix(m.mailFrom, "<SRS0=abcd=JX=atlassian.test=jira@id.test>") {
				t.Fatalf("envelope seen by the sink: %+v", msgs)
			}
			sameMessage(t, m.data, []byte(testMsg))
		})
	}
}

func TestDirectReplies(t *testing.T) {
	tests := []struct {
		name      string
		sinkArgs  []string
		permanent bool
		stage     string
		code      int
	}{
		{"RCPT 5xx is permanent", []string{"-f", "RCPT"}, true, "RCPT TO", 500},
		{"RCPT 4xx is temporary", []string{"-r", "RCPT"}, false, "RCPT TO", 450},
		{"MAIL 5xx is permanent", []string{"-f", "MAIL"}, true, "MAIL FROM", 500},
		{"DATA 5xx is permanent", []string{"-f", "DATA"}, true, "DATA", 500},
		{"421 and disconnect is temporary", []string{"-Q", "RCPT"}, false, "RCPT TO", 421},
		{"disconnect is temporary", []string{"-q", "MAIL"}, false, "MAIL FROM", 0},
		{"EHLO 5xx is not the message's fault", []string{"-f", "EHLO,HELO"}, false, "EHLO", 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSink(t, tt.sinkArgs...)
			d := &Direct{Resolver: &fakeDNS{hosts: map[string][]string{"dest.test": {s.host}}}, Port: s.port}
			err, perm := d.Deliver(context.Background(), "a@origin.test", "r@dest.test", []byte(testMsg))
			var e *Error
			if !errors.As(err, &e) || perm != tt.permanent || e.Stage != tt.stage || e.Code != tt.code {
				t.Fatalf("Deliver = %v (%#v), permanent %v; want stage %s code %d permanent %v", err, e, perm, tt.stage, tt.code, tt.permanent)
			}
			if n := len(s.messages(t)); n != 0 {
				t.Fatalf("sink kept %d messages", n)
			}
		})
	}
}

func TestSmarthostSink(t *testing.T) {
	s := startSink(t)
	tests := []struct {
		name      string
		h         Smarthost
		delivered bool
	}{
		{"none", Smarthost{Address: s.addr, TLS: TLSNone}, true},
		{"opportunistic without STARTTLS", Smarthost{Address: s.addr, TLS: TLSOpportunistic}, true},
		{"required without STARTTLS", Smarthost{Address: s.addr, TLS: TLSRequired}, false},
		{"implicit against a clear server", Smarthost{Address: s.addr, TLS: TLSImplicit, Timeout: 5e9}, false},
	}
	kept := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, perm := tt.h.Deliver(context.Background(), "a@origin.test", "r@dest.test", []byte(testMsg))
			if (err == nil) != tt.delivered || perm {
				t.Fatalf("Deliver = %v, permanent %v", err, perm)
			}
			if tt.delivered {
				kept++
			}
			if n := len(s.messages(t)); n != kept {
				t.Fatalf("sink kept %d messages, want %d", n, kept)
			}
		})
	}
	sameMessage(t, s.messages(t)[0].data, []byte(testMsg))
}

func TestDev(t *testing.T) {
	var got []string
	d := Dev(func(_ context.Context, from, to string, data []byte) error {
		got = append(got, from, to, string(data))
		return nil
	})
	if err, _ := d.Deliver(context.Background(), "a@x", "b@y", []byte("m")); err != nil || strings.Join(got, "|") != "a@x|b@y|m" {
		t.Fatalf("Dev: %v %q", err, got)
	}
	fail := Dev(func(context.Context, string, string, []byte) error { return errors.New("full") })
	if err, perm := fail.Deliver(context.Background(), "a@x", "b@y", nil); err == nil || perm {
		t.Fatalf("Dev failure: %v %v", err, perm)
	}
}

func TestParseTLSMode(t *testing.T) {
	for _, s := range []string{"required", "opportunistic", "none", "implicit"} {
		if m, err := ParseTLSMode(s); err != nil || string(m) != s {
			t.Errorf("ParseTLSMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseTLSMode("starttls"); err == nil {
		t.Error("ParseTLSMode accepted starttls")
	}
}

type fakeSRS struct{}

func (fakeSRS) Forward(a string) (string, error) {
	switch {
	case a == "":
		return "", nil
	case !strings.Contains(a, "@"):
		return "", errors.New("no domain")
	}
	return "SRS0=hash=TT=" + a[strings.IndexByte(a, '@')+1:] + "=" + a[:strings.IndexByte(a, '@')] + "@id.test", nil
}

func TestForwarding(t *testing.T) {
	var gotFrom string
	var gotData []byte
	next := Dev(func(_ context.Context, from, to string, data []byte) error {
		gotFrom, gotData = from, data
		return nil
	})
	sign := func(data []byte) ([]byte, error) { return append([]byte("X-Signed: yes\r\n"), data...), nil }
	f := &Forwarding{Next: next, SRS: fakeSRS{}, Sign: sign}
	tests := []struct {
		from, wantFrom string
		permanent, ok  bool
	}{
		{"jira@atlassian.test", "SRS0=hash=TT=atlassian.test=jira@id.test", false, true},
		{"", "", false, true}, // a bounce stays a bounce
		{"nodomain", "", true, false},
	}
	for _, tt := range tests {
		gotFrom, gotData = "unset", nil
		err, perm := f.Deliver(context.Background(), tt.from, "r@dest.test", []byte(testMsg))
		if (err == nil) != tt.ok || perm != tt.permanent {
			t.Fatalf("Deliver(%q) = %v, %v", tt.from, err, perm)
		}
		if !tt.ok {
			continue
		}
		if gotFrom != tt.wantFrom || string(gotData) != "X-Signed: yes\r\n"+testMsg {
			t.Fatalf("Deliver(%q) passed on from %q data %q", tt.from, gotFrom, gotData)
		}
	}
	failing := &Forwarding{Next: next, Sign: func([]byte) ([]byte, error) { return nil, errors.New("hsm down") }}
	if err, perm := failing.Deliver(context.Background(), "a@b.test", "r@dest.test", []byte(testMsg)); err == nil || perm {
		t.Fatalf("signing failure: %v, permanent %v; want a temporary error", err, perm)
	}
}

// On port 25 (real MX delivery) an MX that resolves to an internal address is
// never connected to: a member could otherwise point their domain's MX at us
// and loop mail, or at the inside network.
func TestDirectSkipsInternalMX(t *testing.T) {
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1"} {
		d := &Direct{Resolver: &fakeDNS{hosts: map[string][]string{"dest.test": {ip}}}}
		err, perm := d.Deliver(context.Background(), "a@origin.test", "r@dest.test", []byte(testMsg))
		var e *Error
		if !errors.As(err, &e) || perm || !strings.Contains(e.Msg, "internal address") {
			t.Errorf("%s: Deliver = %v (permanent %v), want a temporary refusal naming the internal address", ip, err, perm)
		}
	}
	for _, ip := range []string{"192.0.2.1", "8.8.8.8", "2001:db8::1"} {
		if internalAddr(ip) {
			t.Errorf("%s counted as internal", ip)
		}
	}
}
