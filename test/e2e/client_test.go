package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// client is a plain HTTP client with its own cookie jar: a second browser
// session, or a script. It does not follow redirects, so that tests see the
// 303s the pages answer with.
type client struct {
	t    *testing.T
	base string
	ua   string
	hc   *http.Client
}

func newClient(t *testing.T, base, userAgent string) *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, base: base, ua: userAgent, hc: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// page is one answer: status, Location, body and the parsed document.
type page struct {
	Status   int
	Location string
	Body     string
	Header   http.Header
	Cookies  []*http.Cookie
	doc      *html.Node
}

func (c *client) do(req *http.Request) *page {
	c.t.Helper()
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	p := &page{Status: resp.StatusCode, Location: resp.Header.Get("Location"), Body: string(b),
		Header: resp.Header, Cookies: resp.Cookies()}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		p.doc, _ = html.Parse(strings.NewReader(p.Body))
	}
	return p
}

func (c *client) get(path string) *page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

func (c *client) post(path string, form url.Values) *page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

// submit fetches the page at path, takes the hidden fields (CSRF token and
// the like) of the form whose action is action, adds fields, and posts it.
func (c *client) submit(path, action string, fields url.Values) *page {
	c.t.Helper()
	p := c.get(path)
	if p.Status != http.StatusOK {
		c.t.Fatalf("GET %s: status %d, want 200\n%s", path, p.Status, tail(p.Body, 2000))
	}
	form := p.hiddenFields(action)
	if form == nil {
		c.t.Fatalf("GET %s: no form with action %q", path, action)
	}
	for k, v := range fields {
		form[k] = v
	}
	return c.post(action, form)
}

// login logs in through the real form and reports whether it worked (a 303
// away from the login page); a refusal must be a form page again.
func (c *client) login(login, password string) bool {
	c.t.Helper()
	p := c.submit("/login", "/login", url.Values{"login": {login}, "password": {password}})
	switch {
	case p.Status == http.StatusSeeOther && !strings.HasPrefix(p.Location, "/login"):
		return true
	case p.Status == http.StatusUnprocessableEntity || p.Status == http.StatusOK || p.Status == http.StatusTooManyRequests:
		return false
	}
	c.t.Fatalf("POST /login as %s: status %d, Location %q\n%s", login, p.Status, p.Location, tail(p.Body, 2000))
	return false
}

// loggedIn reports whether the client's session is alive: /account answers
// 200 instead of sending it to the login page.
func (c *client) loggedIn() bool {
	c.t.Helper()
	p := c.get("/account")
	switch {
	case p.Status == http.StatusOK:
		return true
	case p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/login"):
		return false
	}
	c.t.Fatalf("GET /account: status %d, Location %q", p.Status, p.Location)
	return false
}

// HTML helpers.

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	for _, c := range strings.Fields(v) {
		if c == class {
			return true
		}
	}
	return false
}

// find returns every element below n (n included) for which match is true.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	return out
}

func byTag(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == tag }
}

func byID(id string) func(*html.Node) bool {
	return func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id }
}

// text is the text content of n with white space collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// hiddenFields returns the hidden inputs of the first form posting to action,
// or nil when there is none.
func (p *page) hiddenFields(action string) url.Values {
	for _, f := range find(p.doc, byTag("form")) {
		if a, _ := attr(f, "action"); a != action {
			continue
		}
		v := url.Values{}
		for _, in := range find(f, byTag("input")) {
			if typ, _ := attr(in, "type"); typ == "hidden" {
				name, _ := attr(in, "name")
				val, _ := attr(in, "value")
				v.Add(name, val)
			}
		}
		return v
	}
	return nil
}

// has reports whether the page has an element with this id.
func (p *page) has(id string) bool { return len(find(p.doc, byID(id))) > 0 }

// textOf is the text of the element with this id, "" when absent.
func (p *page) textOf(id string) string {
	if n := find(p.doc, byID(id)); len(n) > 0 {
		return text(n[0])
	}
	return ""
}

// The dev outbox.

// outMail is one mail of /dev/mail.
type outMail struct {
	ID      int
	To      string
	Subject string
	Links   []string
}

// outbox reads /dev/mail, newest first.
func outbox(t *testing.T, base string) []outMail {
	t.Helper()
	c := newClient(t, base, "idbridge-e2e-outbox")
	p := c.get("/dev/mail")
	if p.Status != http.StatusOK {
		t.Fatalf("GET /dev/mail: status %d", p.Status)
	}
	var out []outMail
	for _, art := range find(p.doc, func(n *html.Node) bool { return n.Data == "article" && hasClass(n, "mail") }) {
		var m outMail
		id, _ := attr(art, "id")
		m.ID, _ = strconv.Atoi(strings.TrimPrefix(id, "mail-"))
		if h := find(art, byTag("h2")); len(h) > 0 {
			m.Subject = text(h[0])
		}
		if to := find(art, func(n *html.Node) bool { return hasClass(n, "mail-to") }); len(to) > 0 {
			m.To = text(to[0])
		}
		for _, body := range find(art, func(n *html.Node) bool { return hasClass(n, "mail-body") }) {
			for _, a := range find(body, byTag("a")) {
				if h, ok := attr(a, "href"); ok {
					m.Links = append(m.Links, h)
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// mailsTo returns the mails to address (compared case-insensitively, also
// inside "Name <addr>"), newest first.
func mailsTo(t *testing.T, base, address string) []outMail {
	t.Helper()
	var out []outMail
	for _, m := range outbox(t, base) {
		if strings.Contains(strings.ToLower(m.To), strings.ToLower(address)) {
			out = append(out, m)
		}
	}
	return out
}

// waitLink waits for a mail to address holding a link to base+path (with
// a query), newer than the mail id after, and returns the link and the id.
func waitLink(t *testing.T, base, address, path string, after int) (string, int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range mailsTo(t, base, address) {
			if m.ID <= after {
				continue
			}
			for _, l := range m.Links {
				if strings.HasPrefix(l, base+path+"?") {
					return l, m.ID
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no mail to %s with a link to %s after mail %d in 20 s; outbox: %+v", address, path, after, outbox(t, base))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lastMailID is the id of the newest mail to address, 0 when none.
func lastMailID(t *testing.T, base, address string) int {
	t.Helper()
	if ms := mailsTo(t, base, address); len(ms) > 0 {
		return ms[0].ID
	}
	return 0
}

func describe(ms []outMail) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  #%d to %s: %q", m.ID, m.To, m.Subject)
	}
	return b.String()
}
