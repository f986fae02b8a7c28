package config

import "strings"

// Error is one mistake in the configuration.
type Error struct {
	// Path is the key path, e.g. "saml.service_providers[1].acs_url"; "" for
	// the file as a whole or an unknown environment variable.
	Path string
	// Msg says what is wrong and, where it helps, what is expected.
	Msg string
	// Source is where the value came from: "line 12", an environment
	// variable name, or "" for a default or derived value.
	Source string
}

// Error formats e as "path: msg (source)".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Source != "" {
		b.WriteString(" (")
		b.WriteString(e.Source)
		b.WriteString(")")
	}
	return b.String()
}

// ValidationError lists every mistake found in a configuration.
// check-config prints Problems one per line.
type ValidationError struct {
	Problems []*Error
}

// Error returns the problems, one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}
