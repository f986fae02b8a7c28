package web

import (
	"errors"
	"slices"
	"strings"

	"github.com/idbridge/idbridge/internal/account"
)

// Field names used by account's validation errors, normalised (lowercase,
// letters and digits only), mapped to the names of this package's form
// fields. A form passes overrides for fields it names differently (the new
// password on the change-password form is "new_password").
var accountFields = map[string]string{
	"username":  "username",
	"email":     "email",
	"password":  "password",
	"firstname": "first_name",
	"first":     "first_name",
	"lastname":  "last_name",
	"last":      "last_name",
	"name":      "first_name",
}

// applyValidation copies the field errors of an *account.ValidationError into
// f and reports whether err was one. A field the form does not show gets its
// message at the top of the form.
func (s *Server) applyValidation(f *form, err error, shown []string, overrides map[string]string) bool {
	var ve *account.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for _, fe := range ve.Fields {
		norm := normaliseField(fe.Field)
		field, ok := overrides[norm]
		if !ok {
			field = accountFields[norm]
		}
		key := fe.Code
		if !s.cat.has(key) {
			s.log.Warn("validation code missing from the catalogue", "code", key)
			key = "error.invalid_field"
		}
		if field != "" && slices.Contains(shown, field) {
			f.set(field, key)
		} else if f.Error == "" {
			f.Error = key
		}
	}
	if !f.Failed() {
		f.Error = "error.invalid_form"
	}
	return true
}

func normaliseField(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		}
	}
	return b.String()
}
