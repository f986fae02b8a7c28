package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/store"
)

// Admin pages, for members of "admins" (see Server.admin). Every action is
// recorded by account in the audit trail with actor "admin:<username>".

const adminPageSize = 50

type adminAccountsData struct {
	Query    string
	Accounts []store.Account
	Next     string // URL of the next page, or ""
	Prev     string
}

func (s *Server) adminHome(w http.ResponseWriter, r *http.Request) {
	redirect(w, r, "/admin/accounts")
}

func (s *Server) adminAccounts(w http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 100 {
		q = q[:100]
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	offset = max(offset, 0)
	list, err := s.acc.List(r.Context(), store.AccountFilter{Query: q, Limit: adminPageSize + 1, Offset: offset})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d := adminAccountsData{Query: q}
	page := func(off int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		if off > 0 {
			v.Set("offset", strconv.Itoa(off))
		}
		if len(v) == 0 {
			return "/admin/accounts"
		}
		return "/admin/accounts?" + v.Encode()
	}
	if len(list) > adminPageSize {
		list = list[:adminPageSize]
		d.Next = page(offset + adminPageSize)
	}
	if offset > 0 {
		d.Prev = page(max(offset-adminPageSize, 0))
	}
	d.Accounts = list
	s.render(w, r, http.StatusOK, "admin_accounts", "admin.accounts.title", &view{D: d})
}

type adminAccountData struct {
	Account        store.Account
	VirtualAddress string
	Groups         []string
	Audit          []store.AuditEvent
}

func (s *Server) adminAccount(w http.ResponseWriter, r *http.Request) {
	s.renderAdminAccount(w, r, http.StatusOK, nil)
}

func (s *Server) renderAdminAccount(w http.ResponseWriter, r *http.Request, status int, f *form) {
	ctx := r.Context()
	username := r.PathValue("username")
	a, groups, err := s.acc.Get(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	audit, err := s.acc.Audit(ctx, store.AuditFilter{Username: a.Username, Limit: 50})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if f == nil {
		f = newForm("group")
	}
	s.render(w, r, status, "admin_account", "admin.account.title", &view{
		Form:  f,
		Flash: doneNotice("/admin/accounts/", r),
		D: adminAccountData{
			Account: a, VirtualAddress: s.acc.VirtualAddress(a), Groups: groups, Audit: audit,
		},
	})
}

func (s *Server) actor(r *http.Request) string {
	_, me, _ := s.Current(r)
	return "admin:" + me.Username
}

func adminAccountURL(username, done string) string {
	return withDone("/admin/accounts/"+url.PathEscape(username), done)
}

func (s *Server) adminLock(w http.ResponseWriter, r *http.Request) {
	u := r.PathValue("username")
	if err := s.acc.Lock(r.Context(), u, s.actor(r)); err != nil {
		s.adminActionError(w, r, err)
		return
	}
	redirect(w, r, adminAccountURL(u, "locked"))
}

func (s *Server) adminUnlock(w http.ResponseWriter, r *http.Request) {
	u := r.PathValue("username")
	if err := s.acc.Unlock(r.Context(), u, s.actor(r)); err != nil {
		s.adminActionError(w, r, err)
		return
	}
	redirect(w, r, adminAccountURL(u, "unlocked"))
}

func (s *Server) adminGroup(w http.ResponseWriter, r *http.Request) {
	u := r.PathValue("username")
	group := strings.TrimSpace(strings.ToLower(r.PostFormValue("group")))
	member := r.PostFormValue("action") != "remove"
	if !account.ValidGroup(group) {
		f := newForm("group")
		f.Values["group"] = group
		f.set("group", "admin.group.invalid")
		s.renderAdminAccount(w, r, http.StatusUnprocessableEntity, f)
		return
	}
	if err := s.acc.SetGroup(r.Context(), u, group, member, s.actor(r)); err != nil {
		s.adminActionError(w, r, err)
		return
	}
	redirect(w, r, adminAccountURL(u, "group"))
}

func (s *Server) adminActionError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		s.renderError(w, r, http.StatusNotFound, "error.not_found")
		return
	}
	s.serverError(w, r, err)
}

type adminAuditData struct {
	User, Type, Since string
	Events            []store.AuditEvent
}

func (s *Server) adminAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := adminAuditData{
		User:  strings.TrimSpace(q.Get("user")),
		Type:  strings.TrimSpace(q.Get("type")),
		Since: strings.TrimSpace(q.Get("since")),
	}
	f := store.AuditFilter{Username: account.NormalizeUsername(d.User), Type: d.Type, Limit: 200}
	fm := newForm("", "user", "type", "since")
	if d.Since != "" {
		dur, err := time.ParseDuration(d.Since)
		if err != nil || dur <= 0 {
			fm.set("since", "admin.audit.since_invalid")
		} else {
			f.Since = s.now().Add(-dur)
		}
	}
	fm.Values = map[string]string{"user": d.User, "type": d.Type, "since": d.Since}
	events, err := s.acc.Audit(r.Context(), f)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	d.Events = events
	s.render(w, r, http.StatusOK, "admin_audit", "admin.audit.title", &view{D: d, Form: fm})
}
