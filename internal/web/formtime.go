package web

import (
	"strconv"
	"strings"
	"time"
)

// formTimeResult is the verdict on a signed form timestamp.
type formTimeResult int

const (
	formTimeOK      formTimeResult = iota
	formTimeInvalid                // missing, malformed, or not signed by us
	formTimeTooFast                // submitted sooner than a person can type
	formTimeTooOld                 // the form sat open too long
)

// maxFormTimeLen bounds the field before any parsing.
const maxFormTimeLen = 80

// formTimeSkew tolerates clocks of several nodes that disagree a little.
const formTimeSkew = 5 * time.Second

// newFormTime returns a signed timestamp for a form rendered at now:
// "<unix seconds>.<base64url HMAC>".
func (s *Server) newFormTime(now time.Time) string {
	ts := strconv.FormatInt(now.Unix(), 10)
	return ts + "." + s.keys.token("form-time", ts)
}

// checkFormTime verifies a signed form timestamp and its age at now.
func (s *Server) checkFormTime(v string, now time.Time) formTimeResult {
	return verifyFormTime(s.keys, v, now, s.opts.RegisterMinAge, s.opts.RegisterMaxAge)
}

func verifyFormTime(k keyring, v string, now time.Time, minAge, maxAge time.Duration) formTimeResult {
	if len(v) > maxFormTimeLen {
		return formTimeInvalid
	}
	ts, mac, ok := strings.Cut(v, ".")
	if !ok || ts == "" || len(ts) > 19 {
		return formTimeInvalid
	}
	for _, c := range ts {
		if c < '0' || c > '9' {
			return formTimeInvalid
		}
	}
	if !k.verify("form-time", ts, mac) {
		return formTimeInvalid
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return formTimeInvalid
	}
	age := now.Sub(time.Unix(sec, 0))
	switch {
	case age < -formTimeSkew:
		return formTimeInvalid
	case age < minAge:
		return formTimeTooFast
	case age > maxAge:
		return formTimeTooOld
	}
	return formTimeOK
}
