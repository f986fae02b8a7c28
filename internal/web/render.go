package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

//go:embed templates/*.html static/style.css catalog/*.json
var assets embed.FS

// pages are the templates New requires (templates/<name>.html, each defining
// "content"); layout.html and partials.html hold what they share.
var pages = []string{
	"portal", "login", "logout", "register", "register_done", "verify", "verify_resend",
	"forgot", "reset", "account", "message", "error",
	"admin_accounts", "admin_account", "admin_audit", "dev_mail",
}

// templateKeys find the catalogue keys templates use: {{t "key"}}, the label
// of (input .Form "name" "type" "label.key" …) and its "hint=key".
var templateKeys = []*regexp.Regexp{
	regexp.MustCompile(`\bt\s+"([^"]+)"`),
	regexp.MustCompile(`\binput\s+\S+\s+"[^"]*"\s+"[^"]*"\s+"([^"]+)"`),
	regexp.MustCompile(`"hint=([^"]+)"`),
}

func parseTemplates(fsys fs.FS, cat *catalog) (map[string]map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"t":     func(key string, args ...any) string { return key },
		"input": newInput,
		"date":  func(t time.Time) string { return formatTime(t) },
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(fsys, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	var missing []error
	checkKeys := func(name string) {
		src, _ := fs.ReadFile(fsys, "templates/"+name)
		for _, re := range templateKeys {
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				if !cat.has(m[1]) {
					missing = append(missing, fmt.Errorf("templates/%s: catalogue key %q is missing", name, m[1]))
				}
			}
		}
	}
	checkKeys("layout.html")
	checkKeys("partials.html")
	parsed := map[string]*template.Template{}
	for _, p := range pages {
		file := "templates/" + p + ".html"
		if _, err := fs.Stat(fsys, file); err != nil {
			return nil, fmt.Errorf("template %s: %w", file, err)
		}
		t, err := template.Must(base.Clone()).ParseFS(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", file, err)
		}
		if t.Lookup("content") == nil {
			return nil, fmt.Errorf("template %s defines no \"content\"", file)
		}
		checkKeys(p + ".html")
		parsed[p] = t
	}
	if len(missing) > 0 {
		return nil, errors.Join(missing...)
	}
	out := map[string]map[string]*template.Template{}
	for _, lang := range cat.langs {
		out[lang] = map[string]*template.Template{}
		for name, t := range parsed {
			c, err := t.Clone()
			if err != nil {
				return nil, err
			}
			lang := lang
			c.Funcs(template.FuncMap{"t": func(key string, args ...any) string { return cat.T(lang, key, args...) }})
			out[lang][name] = c
		}
	}
	return out, nil
}

// view is what every page template gets.
type view struct {
	Lang   string
	Site   Site
	StyleV string
	Title  string         // catalogue key of the page title
	User   *store.Account // nil when logged out
	Admin  bool
	CSRF   string
	Flash  string // catalogue key of a one-line notice at the top
	Form   *form
	D      any // page-specific data
}

// form carries what the member typed and what was wrong with it.
type form struct {
	Values map[string]string
	Errors map[string]string // field → catalogue key
	Error  string            // catalogue key of an error about the whole form
	Name   string            // which form on a page with several (account page)
	Order  []string          // the fields in page order, for the error summary
}

func newForm(name string, order ...string) *form {
	return &form{Name: name, Order: order, Values: map[string]string{}, Errors: map[string]string{}}
}

func (f *form) set(field, key string) {
	if _, ok := f.Errors[field]; !ok {
		f.Errors[field] = key
	}
}

// fieldError is one line of the error summary.
type fieldError struct{ ID, Key string }

// Summary lists the field errors in the order the fields appear (Order),
// then any others by name.
func (f *form) Summary() []fieldError {
	var out []fieldError
	id := func(field string) string {
		if f.Name != "" {
			return f.Name + "-" + field
		}
		return field
	}
	for _, field := range f.Order {
		if key, ok := f.Errors[field]; ok {
			out = append(out, fieldError{id(field), key})
		}
	}
	var rest []string
	for field := range f.Errors {
		if !slices.Contains(f.Order, field) {
			rest = append(rest, field)
		}
	}
	slices.Sort(rest)
	for _, field := range rest {
		out = append(out, fieldError{id(field), f.Errors[field]})
	}
	return out
}

func (f *form) Failed() bool { return f.Error != "" || len(f.Errors) > 0 }

// inputView is one labelled form field, rendered by the "input" template.
type inputView struct {
	ID, Name, Type, Label, Value, Error, Hint, Autocomplete string
	Required, Autofocus                                     bool
}

// newInput builds a field for templates:
// (input .Form "name" "type" "label.key" "autocomplete" ["hint=key"] ["required"] ["autofocus"]).
// Passwords are never sent back to the browser.
func newInput(f *form, name, typ, label, autocomplete string, flags ...string) inputView {
	in := inputView{Name: name, Type: typ, Label: label, Autocomplete: autocomplete, ID: name}
	if f != nil {
		if f.Name != "" {
			in.ID = f.Name + "-" + name
		}
		if typ != "password" {
			in.Value = f.Values[name]
		}
		in.Error = f.Errors[name]
	}
	for _, fl := range flags {
		switch {
		case fl == "required":
			in.Required = true
		case fl == "autofocus":
			in.Autofocus = true
		case strings.HasPrefix(fl, "hint="):
			in.Hint = strings.TrimPrefix(fl, "hint=")
		}
	}
	return in
}

// Described returns the aria-describedby ids of the field.
func (in inputView) Described() string {
	var ids []string
	if in.Hint != "" {
		ids = append(ids, in.ID+"-hint")
	}
	if in.Error != "" {
		ids = append(ids, in.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// render executes page with v filled in for r and writes it with status.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page, title string, v *view) {
	if v == nil {
		v = &view{}
	}
	lang := s.cat.pick(r.Header.Get("Accept-Language"))
	v.Lang = lang
	v.Site = s.opts.Site
	v.StyleV = s.styleV
	v.Title = title
	if _, a, ok := s.Current(r); ok {
		v.User = &a
		if admin, err := s.acc.IsAdmin(r.Context(), a.ID); err == nil {
			v.Admin = admin
		}
	}
	v.CSRF = s.csrfToken(w, r)
	t := s.tmpl[lang][page]
	if t == nil {
		s.serverError(w, r, fmt.Errorf("no template %q", page))
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		logger(r.Context()).Error("render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	h.Add("Vary", "Accept-Language, Cookie")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// message renders a page with one heading and one paragraph, and optional
// links (catalogue key → local URL).
type messageData struct {
	Text  string
	Raw   string // a message that is not in the catalogue (another part's refusal)
	Links []link
}

type link struct{ Label, URL string }

func (s *Server) renderMessage(w http.ResponseWriter, r *http.Request, status int, title, text string, links ...link) {
	s.render(w, r, status, "message", title, &view{D: messageData{Text: text, Links: links}})
}

// renderError renders the error page: key is the catalogue key of the
// message (its title is key + ".title").
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, key string) {
	s.render(w, r, status, "error", key+".title", &view{D: messageData{Text: key}})
}

// RenderError renders the error page for another part mounted on the route
// table (SAML refusals): msg is shown as it is (escaped), and must be safe to
// show to anyone.
func (s *Server) RenderError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", "error.refused.title", &view{D: messageData{Raw: msg}})
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	logger(r.Context()).Error("internal error", "path", r.URL.Path, "err", err)
	s.renderError(w, r, http.StatusInternalServerError, "error.internal")
}

// redirect sends a 303 See Other to a local path.
func redirect(w http.ResponseWriter, r *http.Request, path string) {
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// withDone adds ?done=<what> to a local path, for the notice on the next page.
func withDone(path, what string) string {
	return path + "?" + url.Values{"done": {what}}.Encode()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Styles.

const defaultColor = "#0b6e4f"

var hexColor = regexp.MustCompile(`^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

func validColor(c string) bool { return hexColor.MatchString(c) }

// logoSource checks the logo URL and returns the origin the CSP must allow
// ("" for a local path or no logo).
func logoSource(u string) (string, error) {
	if u == "" || localPath(u) {
		return "", nil
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil ||
		strings.ContainsAny(u, " ;'\"") {
		return "", fmt.Errorf("web: logo URL %q must be a local path or an https URL", u)
	}
	return "https://" + p.Host, nil
}

// renderStyle puts the site colour into the stylesheet (validated above, so
// it cannot break out of the declaration) and returns it with a version for
// cache busting.
func renderStyle(fsys fs.FS, color string) ([]byte, string, error) {
	css, err := fs.ReadFile(fsys, "static/style.css")
	if err != nil {
		return nil, "", err
	}
	const placeholder = "--accent: #0b6e4f;"
	if !bytes.Contains(css, []byte(placeholder)) {
		return nil, "", errors.New("static/style.css lacks the accent colour declaration")
	}
	css = bytes.Replace(css, []byte(placeholder), []byte("--accent: "+color+";"), 1)
	sum := sha256.Sum256(css)
	return css, hex.EncodeToString(sum[:6]), nil
}

func (s *Server) styleCSS(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=86400")
	h.Set("ETag", `"`+s.styleV+`"`)
	http.ServeContent(w, r, "style.css", time.Time{}, bytes.NewReader(s.style))
}
