package account

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/idbridge/idbridge/internal/password"
)

// builtinReserved are usernames that must reach the operators of the virtual
// domain; they can never be registered.
var builtinReserved = []string{
	"postmaster", "abuse", "hostmaster", "webmaster", "admin", "administrator", "root",
	"noreply", "no-reply", "mailer-daemon", "security", "support",
}

// maxNameLen is the longest first or last name, in characters.
const maxNameLen = 100

// NormalizeUsername returns the stored form of a username: trimmed and lowercase.
func NormalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

// ValidUsername reports whether u (already lowercase) follows the username
// grammar: a letter first, then letters, digits, '.', '-' or '_'; 3 to 32
// characters; no "..", no trailing '.'. Reserved names are not checked here.
func ValidUsername(u string) bool {
	if len(u) < 3 || len(u) > 32 || u[0] < 'a' || u[0] > 'z' {
		return false
	}
	for i := 1; i < len(u); i++ {
		c := u[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			if u[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return u[len(u)-1] != '.'
}

// IsReserved reports whether the username u cannot be registered.
func (s *Service) IsReserved(u string) bool { return s.reserved[NormalizeUsername(u)] }

// usernameCode returns the field error code of u (lowercase) or "".
func (s *Service) usernameCode(u string) string {
	switch {
	case !ValidUsername(u):
		return "username.invalid"
	case s.reserved[u]:
		return "username.reserved"
	}
	return ""
}

// normalizeEmail trims an address; it keeps the case as entered.
func normalizeEmail(e string) string { return strings.TrimSpace(e) }

// emailCode returns the field error code of address e or "": the syntax that
// net/mail accepts, restricted to a plain addr-spec with a dotted DNS domain,
// and not on the virtual domain or under it.
func (s *Service) emailCode(e string) string {
	if !ValidEmail(e) {
		return "email.invalid"
	}
	domain := strings.ToLower(e[strings.LastIndexByte(e, '@')+1:])
	if vd := s.cfg.VirtualDomain; vd != "" && (domain == vd || strings.HasSuffix(domain, "."+vd)) {
		return "email.virtual_domain"
	}
	return ""
}

// ValidEmail reports whether e is an address idbridge accepts: a bare
// addr-spec (no display name, no quoted local part, no IP literal), at most
// 254 octets, local part at most 64, a domain of at least two DNS labels.
func ValidEmail(e string) bool {
	if len(e) > 254 || strings.ContainsAny(e, "\"\\<>()[]:; \t\r\n") {
		return false
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	local, domain := e[:at], e[at+1:]
	if local == "" || len(local) > 64 || strings.Contains(local, "..") || local[0] == '.' || local[len(local)-1] == '.' {
		return false
	}
	for _, r := range local {
		if r > unicode.MaxASCII || r < 0x21 {
			return false
		}
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return false
	}
	for i, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for j := 0; j < len(l); j++ {
			c := l[j] | 0x20
			if !(c >= 'a' && c <= 'z' || l[j] >= '0' && l[j] <= '9' || l[j] == '-') {
				return false
			}
		}
		if i == len(labels)-1 && strings.Trim(l, "0123456789") == "" {
			return false // an all-numeric TLD: an IP address
		}
	}
	return true
}

// passwordCode returns the field error code of a new password or "".
func (s *Service) passwordCode(pw, username string) string {
	switch {
	case utf8.RuneCountInString(pw) < s.cfg.PasswordMinLength:
		return "password.too_short"
	case password.Common(pw), username != "" && strings.EqualFold(pw, username):
		return "password.common"
	}
	return ""
}

// nameCode returns the field error code of a first or last name (trimmed) or "".
func nameCode(n string) string {
	switch {
	case n == "":
		return "name.required"
	case utf8.RuneCountInString(n) > maxNameLen:
		return "name.too_long"
	case !utf8.ValidString(n) || strings.IndexFunc(n, unicode.IsControl) >= 0:
		return "name.invalid"
	}
	return ""
}

// checkNames adds the field errors of first and last names to ve.
func checkNames(ve *ValidationError, first, last string) {
	if c := nameCode(first); c != "" {
		ve.add("first_name", c)
	}
	if c := nameCode(last); c != "" {
		ve.add("last_name", c)
	}
}
