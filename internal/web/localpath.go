package web

import (
	"net/url"
	"strings"
)

// defaultContinue is where a member lands when no (acceptable) continue path
// was given.
const defaultContinue = "/account"

// maxContinueLen bounds a continue path; longer ones are refused.
const maxContinueLen = 2048

// localPath reports whether p is safe to redirect to: a path on this site,
// never another host. It must start with a single "/", must not start with
// "//" or "/\" (browsers treat both as a scheme-relative URL to another host),
// and must hold no control characters, no backslash and no scheme.
func localPath(p string) bool {
	if p == "" || len(p) > maxContinueLen || p[0] != '/' {
		return false
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	// Browsers also decode %-escapes in some places; refuse an encoded slash,
	// backslash or control character in the first path segment, and anything
	// that the URL parser would read as having a host or scheme.
	if dec, err := url.PathUnescape(strings.SplitN(p, "?", 2)[0]); err != nil ||
		strings.HasPrefix(dec, "//") || strings.HasPrefix(dec, "/\\") {
		return false
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return true
}

// continueTarget returns p when it is a local path, and defaultContinue
// otherwise.
func continueTarget(p string) string {
	if localPath(p) {
		return p
	}
	return defaultContinue
}
