package forward

import (
	"errors"
	"strings"
)

// Address grammar errors. They name what is wrong with the address the peer
// sent; they are safe to put into an SMTP reply.
var (
	errAddrEmpty      = errors.New("address is empty")
	errAddrAt         = errors.New("address must contain exactly one @")
	errAddrLocal      = errors.New("local part must be a dot-atom of letters, digits and !#$&'*+-/=?^_`{|}~ without % or !")
	errAddrLocalLong  = errors.New("local part is longer than 64 characters")
	errAddrDomain     = errors.New("domain must be a host name (no address literal, no trailing dot)")
	errAddrDomainLong = errors.New("domain is longer than 253 characters")
)

// ParseAddress splits a mailbox into local part and domain under the strict
// grammar the forwarder accepts for recipients: exactly one "@", a dot-atom
// local part (RFC 5321 section 4.1.2) without the routing characters "%" and
// "!", and a domain of letter-digit-hyphen labels. Quoted local parts,
// source routes ("@a:b@c"), address literals ("[192.0.2.1]"), a trailing
// dot and non-ASCII are refused. Case is kept as given.
func ParseAddress(addr string) (local, domain string, err error) {
	if addr == "" {
		return "", "", errAddrEmpty
	}
	at := strings.IndexByte(addr, '@')
	if at < 0 || strings.IndexByte(addr[at+1:], '@') >= 0 {
		return "", "", errAddrAt
	}
	local, domain = addr[:at], addr[at+1:]
	if !isDotAtom(local) {
		return "", "", errAddrLocal
	}
	if len(local) > 64 {
		return "", "", errAddrLocalLong
	}
	if len(domain) > 253 {
		return "", "", errAddrDomainLong
	}
	if !isHostName(domain) {
		return "", "", errAddrDomain
	}
	return local, domain, nil
}

// isDotAtom reports whether s is 1*atext *("." 1*atext), with "%" and "!"
// taken out of atext: both are old relay-routing syntaxes
// ("user%host@relay", "host!user@relay").
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	prevDot := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if prevDot {
				return false
			}
			prevDot = true
			continue
		}
		prevDot = false
		if !isAtext(c) {
			return false
		}
	}
	return true
}

func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("#$&'*+-/=?^_`{|}~", c) >= 0
}

// isHostName reports whether s is a dotted sequence of LDH labels: no empty
// label (so no trailing dot), each at most 63 octets, no hyphen at either
// end of a label.
func isHostName(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// domainOf returns the domain of a MAIL FROM address, lowercased, or "" when
// it has none.
func domainOf(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(addr[at+1:])
}

// underDomain reports whether d equals parent or is a subdomain of it,
// ignoring case and a trailing dot.
func underDomain(d, parent string) bool {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	parent = strings.TrimSuffix(strings.ToLower(parent), ".")
	if parent == "" {
		return false
	}
	return d == parent || strings.HasSuffix(d, "."+parent)
}
