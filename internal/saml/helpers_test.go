package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// --- keys -----------------------------------------------------------------

var (
	keyOnce sync.Once
	idpKP   KeyPair // the IdP's signing key
	spKP    KeyPair // a test SP's request signing key
	otherKP KeyPair // an unrelated key
)

func newKeyPair(cn string) KeyPair {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		panic(err)
	}
	c, _ := x509.ParseCertificate(der)
	return KeyPair{Key: k, Cert: c}
}

func testKeys() {
	keyOnce.Do(func() {
		idpKP, spKP, otherKP = newKeyPair("idbridge test"), newKeyPair("sp test"), newKeyPair("other")
	})
}

type staticKeys struct {
	active    KeyPair
	published []*x509.Certificate
}

func (k *staticKeys) Active(context.Context) (KeyPair, error) { return k.active, nil }
func (k *staticKeys) Published(context.Context) ([]*x509.Certificate, error) {
	return k.published, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
}

// --- clock ----------------------------------------------------------------

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// --- pending --------------------------------------------------------------

type memPending struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (p *memPending) Put(_ context.Context, key string, v []byte, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string][]byte{}
	}
	if _, ok := p.m[key]; ok {
		return errors.New("exists")
	}
	p.m[key] = bytes.Clone(v)
	return nil
}

func (p *memPending) Take(_ context.Context, key string) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[key]
	if !ok {
		return nil, errors.New("not found")
	}
	delete(p.m, key)
	return v, nil
}

// --- sessions: a tiny fake login ------------------------------------------

var alice = Principal{
	ID: "acc-0001", Username: "alice", Email: "alice@gmail.test",
	FirstName: "Alice", LastName: "O'Brien & <Co>", VirtualAddress: "alice@id.example.org",
	Groups: []string{"devs", "admins"},
}

type fakeSessions struct {
	mu       sync.Mutex
	now      func() time.Time
	users    map[string]Principal
	sessions map[string]*Session
	parts    map[string][]Participant
	ended    []string
	logins   int
}

func newFakeSessions(now func() time.Time) *fakeSessions {
	return &fakeSessions{now: now, users: map[string]Principal{"alice": alice},
		sessions: map[string]*Session{}, parts: map[string][]Participant{}}
}

const cookieName = "idb_test_session"

func (f *fakeSessions) Current(r *http.Request) (Session, bool) {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return Session{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[c.Value]
	if !ok {
		return Session{}, false
	}
	return *s, true
}

func (f *fakeSessions) LoginURL(cont string, force bool) string {
	u := "/login?continue=" + url.QueryEscape(cont)
	if force {
		u += "&force=1"
	}
	return u
}

func (f *fakeSessions) End(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sessions, id)
	delete(f.parts, id)
	f.ended = append(f.ended, id)
	return nil
}

func (f *fakeSessions) RecordParticipant(_ context.Context, id string, p Participant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.parts[id] {
		if q == p {
			return nil
		}
	}
	f.parts[id] = append(f.parts[id], p)
	return nil
}

func (f *fakeSessions) Participants(_ context.Context, id string) ([]Participant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Participant(nil), f.parts[id]...), nil
}

// login creates a session for user and returns its id.
func (f *fakeSessions) login(user string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := newID()
	f.sessions[id] = &Session{ID: id, AuthnInstant: f.now(), Principal: f.users[user]}
	f.logins++
	return id
}

// ServeHTTP is the fake /login (logs in ?user=, default alice, and goes on
// to ?continue=) and /logout (IdP-initiated single logout, then /bye).
func (f *fakeSessions) handler(idp func() *IdP) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		if user == "" {
			user = "alice"
		}
		id := f.login(user)
		http.SetCookie(w, &http.Cookie{Name: cookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		cont := r.URL.Query().Get("continue")
		if !localPath(cont) {
			cont = "/"
		}
		http.Redirect(w, r, cont, http.StatusSeeOther)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		s, ok := f.Current(r)
		if !ok {
			http.Redirect(w, r, "/bye", http.StatusSeeOther)
			return
		}
		next, err := idp().LogoutParticipants(r.Context(), s.ID, "/bye")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		f.End(r.Context(), s.ID)
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
	mux.HandleFunc("/bye", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "logged out") })
	mux.Handle("/saml/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { idp().Handler().ServeHTTP(w, r) }))
	return mux
}

// --- the test IdP -----------------------------------------------------------

type env struct {
	t     testing.TB
	idp   *IdP
	srv   *httptest.Server
	base  string
	sess  *fakeSessions
	pend  *memPending
	clock *fakeClock
}

var testSecret = bytes.Repeat([]byte("s"), 32)

// newEnv starts an httptest server with the IdP and the fake login. With a
// nil clock the real one is used (for real peers, which check times).
func newEnv(t testing.TB, clock *fakeClock, sps ...ServiceProvider) *env {
	t.Helper()
	testKeys()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, base: "http://" + l.Addr().String(), pend: &memPending{}, clock: clock}
	now := time.Now
	if clock != nil {
		now = clock.Now
	}
	e.sess = newFakeSessions(now)
	reg, err := NewRegistry(sps...)
	if err != nil {
		t.Fatal(err)
	}
	e.idp, err = New(Options{
		BaseURL: e.base, Registry: reg, Sessions: e.sess, Pending: e.pend,
		Keys:   &staticKeys{active: idpKP, published: []*x509.Certificate{idpKP.Cert}},
		Secret: testSecret, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: e.sess.handler(func() *IdP { return e.idp })}}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

// client is a browser: a cookie jar, redirects followed.
func newClient(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second}
}

func noFollow(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// --- building requests as an SP would ---------------------------------------

type reqOpts struct {
	Issuer, ID, Destination, ACSURL, ACSIndex, IssueInstant string
	ForceAuthn, IsPassive                                   bool
	Raw                                                     string // replaces the whole XML
}

func authnRequestXML(o reqOpts) string {
	if o.Raw != "" {
		return o.Raw
	}
	if o.ID == "" {
		o.ID = newID()
	}
	if o.IssueInstant == "" {
		o.IssueInstant = samlTime(time.Now())
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<samlp:AuthnRequest xmlns:samlp="%s" xmlns:saml="%s" ID="%s" Version="2.0" IssueInstant="%s"`, nsSAMLP, nsSAML, o.ID, o.IssueInstant)
	if o.Destination != "" {
		fmt.Fprintf(&b, ` Destination="%s"`, xmlEsc(o.Destination))
	}
	if o.ACSURL != "" {
		fmt.Fprintf(&b, ` AssertionConsumerServiceURL="%s" ProtocolBinding="%s"`, xmlEsc(o.ACSURL), BindingPOST)
	}
	if o.ACSIndex != "" {
		fmt.Fprintf(&b, ` AssertionConsumerServiceIndex="%s"`, o.ACSIndex)
	}
	if o.ForceAuthn {
		b.WriteString(` ForceAuthn="true"`)
	}
	if o.IsPassive {
		b.WriteString(` IsPassive="true"`)
	}
	fmt.Fprintf(&b, `><saml:Issuer>%s</saml:Issuer><samlp:NameIDPolicy Format="%s" AllowCreate="true"/></samlp:AuthnRequest>`, xmlEsc(o.Issuer), NameIDFormatEmail)
	return b.String()
}

func xmlEsc(s string) string {
	var b bytes.Buffer
	xmlEscape(&b, s)
	return b.String()
}

func xmlEscape(b *bytes.Buffer, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	b.WriteString(r.Replace(s))
}

func deflateB64(s string) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	fw.Write([]byte(s))
	fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// redirectQuery encodes xml for HTTP-Redirect, signed with key when not nil.
func redirectQuery(param, xml, relayState string, key *rsa.PrivateKey) string {
	q := param + "=" + url.QueryEscape(deflateB64(xml))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if key != nil {
		q += "&SigAlg=" + url.QueryEscape(sigAlgRSASHA256)
		h := sha256.Sum256([]byte(q))
		sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	return q
}

// signXML adds an enveloped signature (after Issuer) with kp.
func signXML(t testing.TB, xml string, kp KeyPair) string {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(xml); err != nil {
		t.Fatal(err)
	}
	if err := (signer{kp}).signEnveloped(doc.Root()); err != nil {
		t.Fatal(err)
	}
	s, _ := doc.WriteToString()
	return s
}

// --- reading responses ------------------------------------------------------

var (
	formActionRE = regexp.MustCompile(`<form id="saml" method="post" action="([^"]*)"`)
	inputRE      = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// postForm extracts the auto-submit form of a page.
func parsePostPage(t testing.TB, body string) (action string, fields url.Values) {
	t.Helper()
	m := formActionRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no SAML form in page:\n%s", truncate(body, 2000))
	}
	fields = url.Values{}
	for _, f := range inputRE.FindAllStringSubmatch(body, -1) {
		fields.Set(htmlUnescape(f[1]), htmlUnescape(f[2]))
	}
	return htmlUnescape(m[1]), fields
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'", "&lt;", "<", "&gt;", ">", "&#61;", "=").Replace(s)
}

func decodeResponse(t testing.TB, fields url.Values) *etree.Element {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// validateWith checks el's enveloped signature with goxmldsig.
func validateWith(el *etree.Element, c *x509.Certificate) error {
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{c}})
	_, err := vc.Validate(el)
	return err
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
