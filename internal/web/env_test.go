package web

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/mailout"
	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/sqlite"
)

const testDomain = "id.example.test"

// testClock is a settable clock shared by web, account and mailout.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is the real handler over the real SQLite store, account rules and
// mailer (queueing into the store, which /dev/mail shows).
type env struct {
	t     *testing.T
	srv   *httptest.Server
	web   *Server
	st    store.Store
	acc   *account.Service
	met   *metrics.Metrics
	clock *testClock
	base  string
}

var testKey = []byte("0123456789abcdef0123456789abcdef-test-key")

func newEnv(t *testing.T, tweak ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "idbridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	clock := &testClock{t: time.Now()}
	met := metrics.New()

	mailer, err := mailout.New(st, mailout.Config{
		From: "Test ID <noreply@" + testDomain + ">", BaseURL: base, RateLimit: 100,
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mailer.SetClock(clock.Now)
	acc := account.New(st, mailer, account.Config{
		BaseURL: base, VirtualDomain: testDomain,
		Argon2:   password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1},
		Throttle: account.ThrottleConfig{MaxFailures: 3, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute, ResetAfter: 12 * time.Hour},
	}, nil, met)
	acc.SetClock(clock.Now)

	opts := Options{
		Accounts: acc, Store: st, Metrics: met, BaseURL: base,
		VirtualDomain: testDomain, Keys: [][]byte{testKey}, Dev: true, Now: clock.Now,
	}
	for _, f := range tweak {
		f(&opts)
	}
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = w.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, web: w, st: st, acc: acc, met: met, clock: clock, base: base}
}

// browser is one cookie jar.
type browser struct {
	e      *env
	c      *http.Client
	follow bool
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{e: e, follow: true}
	b.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		if !b.follow {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return b
}

type page struct {
	status int
	url    string // final URL after redirects
	body   string
	header http.Header
}

func (b *browser) do(req *http.Request) page {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, url: resp.Request.URL.String(), body: string(body), header: resp.Header}
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.url(path), nil)
	return b.do(req)
}

func (b *browser) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.e.base + path
}

// post sends a form as it is, with the headers given (name, value pairs).
func (b *browser) post(path string, v url.Values, hdr ...string) page {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.url(path), strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var tsRe = regexp.MustCompile(`name="ts" value="([^"]+)"`)

// submit loads formPage, copies its CSRF token (and form timestamp) into v,
// and posts v to action the way a same-origin browser does.
func (b *browser) submit(formPage, action string, v url.Values) page {
	b.e.t.Helper()
	p := b.get(formPage)
	m := csrfRe.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on %s (status %d)", formPage, p.status)
	}
	v.Set("csrf", html.UnescapeString(m[1]))
	if m := tsRe.FindStringSubmatch(p.body); m != nil && v.Get("ts") == "" {
		v.Set("ts", html.UnescapeString(m[1]))
	}
	return b.post(action, v, "Origin", b.e.base, "Sec-Fetch-Site", "same-origin")
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.base)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// login logs in and fails the test unless the account page follows.
func (b *browser) login(login, pw string) page {
	b.e.t.Helper()
	p := b.submit("/login", "/login", url.Values{"login": {login}, "password": {pw}})
	if p.status != 200 || !strings.HasSuffix(p.url, "/account") {
		b.e.t.Fatalf("login %s: status %d at %s:\n%s", login, p.status, p.url, p.body)
	}
	return p
}

// createUser makes a verified account directly.
func (e *env) createUser(username, email, pw string, admin bool) store.Account {
	e.t.Helper()
	a, err := e.acc.Create(context.Background(), account.CreateInput{
		Username: username, FirstName: "First " + username, LastName: "Last", Email: email,
		Password: pw, Admin: admin,
	}, "cli")
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

var mailLinkRe = regexp.MustCompile(`<a href="([^"]+)"`)

// mailLink returns the first link containing path in the newest mail to to,
// read from the dev outbox page like the end-to-end test does.
func (e *env) mailLink(to, path string) string {
	e.t.Helper()
	p := e.browser().get("/dev/mail")
	if p.status != 200 {
		e.t.Fatalf("/dev/mail: %d", p.status)
	}
	for _, art := range strings.Split(p.body, `<article class="mail"`)[1:] {
		if !strings.Contains(art, `class="mail-to">`+html.EscapeString(to)+`<`) {
			continue
		}
		for _, m := range mailLinkRe.FindAllStringSubmatch(art, -1) {
			if l := html.UnescapeString(m[1]); strings.Contains(l, path) {
				return l
			}
		}
	}
	e.t.Fatalf("no mail to %s with a %s link in the outbox:\n%s", to, path, p.body)
	return ""
}

func (e *env) mailCount() int {
	e.t.Helper()
	l, err := e.st.ListMail(context.Background(), 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l)
}

// register loads the registration form, waits (on the test clock) and sends
// v with the form's timestamp, unless v brings its own "ts".
func (b *browser) register(v url.Values, wait time.Duration) page {
	b.e.t.Helper()
	p := b.get("/register")
	m := tsRe.FindStringSubmatch(p.body)
	if p.status != 200 || m == nil {
		b.e.t.Fatalf("register page: %d\n%s", p.status, p.body)
	}
	if !v.Has("ts") {
		v.Set("ts", html.UnescapeString(m[1]))
	}
	b.e.clock.Advance(wait)
	return b.submit("/register", "/register", v)
}
