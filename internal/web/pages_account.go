package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/store"
)

// The account page and the forms on it. Each form posts to its own path and
// comes back to /account with a notice (303) or, when something is wrong,
// renders the page again with the errors beside the fields of that form.

type accountData struct {
	Account        store.Account
	VirtualAddress string
	Groups         []string
	Sessions       []sessionView
	Forms          map[string]*form // profile, email, password, delete
}

type sessionView struct {
	store.Session
	Current bool
}

var accountForms = []string{"profile", "email", "password", "delete"}

func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) {
	s.renderAccount(w, r, http.StatusOK, nil)
}

// renderAccount renders the account page; failed, when not nil, is the form
// that went wrong, with its errors and values.
func (s *Server) renderAccount(w http.ResponseWriter, r *http.Request, status int, failed *form) {
	ctx := r.Context()
	sess, a, _ := s.Current(r)
	sessions, err := s.acc.ListSessions(ctx, a.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	groups, err := s.acc.Groups(ctx, a.ID)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := accountData{
		Account:        a,
		VirtualAddress: s.acc.VirtualAddress(a),
		Groups:         groups,
		Forms:          map[string]*form{},
	}
	for _, x := range sessions {
		d.Sessions = append(d.Sessions, sessionView{Session: x, Current: x.ID == sess.ID})
	}
	for _, name := range accountForms {
		d.Forms[name] = newForm(name)
	}
	d.Forms["profile"].Values["first_name"] = a.FirstName
	d.Forms["profile"].Values["last_name"] = a.LastName
	if failed != nil {
		d.Forms[failed.Name] = failed
	}
	s.render(w, r, status, "account", "account.title", &view{D: d, Flash: doneNotice("/account", r)})
}

func (s *Server) profileSubmit(w http.ResponseWriter, r *http.Request) {
	_, a, _ := s.Current(r)
	f := newForm("profile")
	f.Values["first_name"] = strings.TrimSpace(r.PostFormValue("first_name"))
	f.Values["last_name"] = strings.TrimSpace(r.PostFormValue("last_name"))
	err := s.acc.UpdateProfile(r.Context(), a.ID, f.Values["first_name"], f.Values["last_name"], s.clientIP(r))
	s.afterAccountForm(w, r, f, err, []string{"first_name", "last_name"}, nil, "profile")
}

func (s *Server) emailSubmit(w http.ResponseWriter, r *http.Request) {
	_, a, _ := s.Current(r)
	f := newForm("email", "new_email", "current_password")
	f.Values["new_email"] = strings.TrimSpace(r.PostFormValue("new_email"))
	if f.Values["new_email"] == "" {
		f.set("new_email", "email.invalid")
		s.renderAccount(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	err := s.acc.ChangeEmail(r.Context(), a.ID, r.PostFormValue("current_password"), f.Values["new_email"], s.clientIP(r))
	s.afterAccountForm(w, r, f, err, []string{"new_email", "current_password"},
		map[string]string{"email": "new_email"}, "email")
}

func (s *Server) passwordSubmit(w http.ResponseWriter, r *http.Request) {
	sess, a, _ := s.Current(r)
	f := newForm("password", "current_password", "new_password", "new_password_confirm")
	pw := r.PostFormValue("new_password")
	if pw != r.PostFormValue("new_password_confirm") {
		f.set("new_password_confirm", "password.mismatch")
		s.renderAccount(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	err := s.acc.ChangePassword(r.Context(), a.ID, r.PostFormValue("current_password"), pw, sess.ID, s.clientIP(r))
	s.afterAccountForm(w, r, f, err, []string{"current_password", "new_password", "new_password_confirm"},
		map[string]string{"password": "new_password"}, "password")
}

// afterAccountForm turns the result of an account form into a redirect with
// a notice, or the page again with the errors.
func (s *Server) afterAccountForm(w http.ResponseWriter, r *http.Request, f *form, err error,
	shown []string, overrides map[string]string, done string) {
	switch {
	case err == nil:
		redirect(w, r, withDone("/account", done))
		return
	case errors.Is(err, account.ErrWrongPassword):
		f.set("current_password", "password.wrong")
	case errors.Is(err, account.ErrThrottled):
		f.Error = "error.throttled"
	case s.applyValidation(f, err, shown, overrides):
	default:
		s.serverError(w, r, err)
		return
	}
	s.renderAccount(w, r, http.StatusUnprocessableEntity, f)
}

func (s *Server) endSessionSubmit(w http.ResponseWriter, r *http.Request) {
	sess, a, _ := s.Current(r)
	id := r.PostFormValue("session")
	if id == sess.ID {
		s.endSession(w, r)
		redirect(w, r, withDone("/login", "logout"))
		return
	}
	if err := s.acc.EndSession(r.Context(), a.ID, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.serverError(w, r, err)
		return
	}
	redirect(w, r, withDone("/account", "session"))
}

func (s *Server) deleteSubmit(w http.ResponseWriter, r *http.Request) {
	_, a, _ := s.Current(r)
	f := newForm("delete", "current_password", "confirm")
	if r.PostFormValue("confirm") != "yes" {
		f.set("confirm", "delete.confirm_required")
		s.renderAccount(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	err := s.acc.Delete(r.Context(), a.ID, r.PostFormValue("current_password"), s.clientIP(r))
	switch {
	case err == nil:
	case errors.Is(err, account.ErrWrongPassword):
		f.set("current_password", "password.wrong")
		s.renderAccount(w, r, http.StatusUnprocessableEntity, f)
		return
	default:
		s.serverError(w, r, err)
		return
	}
	forgetSession(r)
	s.clearSessionCookie(w)
	redirect(w, r, withDone("/", "deleted"))
}
