package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func testKeys() keyring {
	return keyring{testKey, []byte("an older key, still accepted, 32+ bytes long")}
}

func TestFormTime(t *testing.T) {
	s := &Server{keys: testKeys(), opts: Options{RegisterMinAge: 3 * time.Second, RegisterMaxAge: time.Hour}}
	t0 := time.Unix(1_800_000_000, 0)
	ts := s.newFormTime(t0)
	old := keyring{testKeys()[1]}
	tsOldKey := (&Server{keys: old}).newFormTime(t0)
	tsOther := (&Server{keys: keyring{[]byte("a key that is not ours at all, 32 bytes")}}).newFormTime(t0)
	for _, c := range []struct {
		name string
		v    string
		at   time.Time
		want formTimeResult
	}{
		{"ok", ts, t0.Add(10 * time.Second), formTimeOK},
		{"signed with the older key", tsOldKey, t0.Add(10 * time.Second), formTimeOK},
		{"too fast", ts, t0.Add(time.Second), formTimeTooFast},
		{"too old", ts, t0.Add(2 * time.Hour), formTimeTooOld},
		{"from the future", ts, t0.Add(-time.Minute), formTimeInvalid},
		{"foreign key", tsOther, t0.Add(10 * time.Second), formTimeInvalid},
		{"changed time", strconv.FormatInt(t0.Unix()-100, 10) + ts[strings.Index(ts, "."):], t0.Add(10 * time.Second), formTimeInvalid},
		{"empty", "", t0, formTimeInvalid},
		{"no mac", "1800000000", t0, formTimeInvalid},
		{"signed number", "+1800000000." + strings.Split(ts, ".")[1], t0.Add(10 * time.Second), formTimeInvalid},
	} {
		if got := s.checkFormTime(c.v, c.at); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func FuzzFormTime(f *testing.F) {
	k := testKeys()
	s := &Server{keys: k}
	t0 := time.Unix(1_800_000_000, 0)
	f.Add(s.newFormTime(t0), int64(10))
	f.Add("1800000000.", int64(0))
	f.Add("99999999999999999999.AAAA", int64(5))
	f.Add("-1.x", int64(-5))
	f.Fuzz(func(t *testing.T, v string, offset int64) {
		now := t0.Add(time.Duration(offset) * time.Second)
		got := verifyFormTime(k, v, now, 3*time.Second, time.Hour)
		// Only a value we signed can pass: re-signing its time must give it back.
		if got == formTimeOK || got == formTimeTooFast || got == formTimeTooOld {
			ts, _, _ := strings.Cut(v, ".")
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil || s.newFormTime(time.Unix(sec, 0)) != v {
				t.Fatalf("accepted %q that we did not sign", v)
			}
		}
	})
}

func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/account", "//evil", "/\\evil", "https://x", "/a?b=c", "/%2f%2fevil", "/\t/x", "/.\\./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if !localPath(p) {
			if continueTarget(p) != defaultContinue {
				t.Fatalf("continueTarget(%q) kept a refused path", p)
			}
			return
		}
		// Whatever passes must stay on this host however a browser reads it.
		if p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\t\r\n\x00") {
			t.Fatalf("localPath accepted %q", p)
		}
		base, _ := parseURL("https://id.example.org/x/")
		ref, err := parseURL(p)
		if err != nil {
			t.Fatalf("accepted unparsable %q", p)
		}
		if u := base.ResolveReference(ref); u.Host != "id.example.org" || u.Scheme != "https" {
			t.Fatalf("localPath(%q) resolves to %s", p, u)
		}
	})
}

func TestCatalogue(t *testing.T) {
	cat, err := loadCatalog(assets)
	if err != nil {
		t.Fatal(err)
	}
	// Every key the Go code names exists (string literals shaped like a key
	// whose first part is a catalogue prefix).
	prefixes := map[string]bool{}
	for k := range cat.msgs[defaultLang] {
		prefixes[strings.SplitN(k, ".", 2)[0]] = true
	}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, _ := strconv.Unquote(lit.Value)
			first, rest, ok := strings.Cut(s, ".")
			if !ok || !prefixes[first] || strings.ContainsAny(s, " /%") || rest == "" || strings.HasSuffix(s, ".html") {
				return true
			}
			if !cat.has(s) && !cat.has(s+".title") {
				t.Errorf("%s: catalogue key %q is missing", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
	// The account package's field-error codes all have a message.
	for _, code := range []string{"username.invalid", "username.reserved", "username.taken", "email.invalid",
		"email.virtual_domain", "email.taken", "password.too_short", "password.common", "password.mismatch",
		"name.required", "name.too_long", "name.invalid"} {
		if !cat.has(code) {
			t.Errorf("no message for account code %q", code)
		}
	}
	// Every error page has a title.
	for k := range cat.msgs[defaultLang] {
		if strings.HasPrefix(k, "error.") && strings.HasSuffix(k, ".title") && !cat.has(strings.TrimSuffix(k, ".title")) {
			t.Errorf("%s has no text", k)
		}
	}
	if got := cat.T("en", "portal.hello", "name", "Ann"); got != "Welcome, Ann. Choose where to go:" {
		t.Errorf("placeholder: %q", got)
	}
	if got := cat.T("en", "no.such.key"); got != "[[no.such.key]]" {
		t.Errorf("missing key: %q", got)
	}
}

func TestAcceptLanguage(t *testing.T) {
	cat := &catalog{langs: []string{"en", "fr", "pt"}, msgs: map[string]map[string]string{
		"en": {"a": "A"}, "fr": {}, "pt": {},
	}}
	for h, want := range map[string]string{
		"":                          "en",
		"fr":                        "fr",
		"fr-CA, en;q=0.5":           "fr",
		"de, pt-BR;q=0.8, fr;q=0.7": "pt",
		"de":                        "en",
		"fr;q=0, en":                "en",
		"*":                         "en",
		"en;q=0.1, fr;q=0.9":        "fr",
		"fr;q=abc, pt":              "pt",
	} {
		if got := cat.pick(h); got != want {
			t.Errorf("pick(%q) = %q, want %q", h, got, want)
		}
	}
	if got := cat.T("fr", "a"); got != "A" {
		t.Errorf("fallback to en: %q", got)
	}
}

// A missing template or catalogue key fails start-up.
func TestTemplatesCheckedAtStart(t *testing.T) {
	cat, err := loadCatalog(assets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseTemplates(assets, cat); err != nil {
		t.Fatalf("embedded templates: %v", err)
	}
	copyFS := func(skip string, extra map[string]string) fstest.MapFS {
		m := fstest.MapFS{}
		fs.WalkDir(assets, ".", func(p string, d fs.DirEntry, err error) error {
			if d.IsDir() || p == skip {
				return nil
			}
			b, _ := fs.ReadFile(assets, p)
			m[p] = &fstest.MapFile{Data: b}
			return nil
		})
		for k, v := range extra {
			m[k] = &fstest.MapFile{Data: []byte(v)}
		}
		return m
	}
	if _, err := parseTemplates(copyFS("templates/login.html", nil), cat); err == nil || !strings.Contains(err.Error(), "login.html") {
		t.Errorf("missing login.html: %v", err)
	}
	bad := copyFS("", map[string]string{"templates/logout.html": `{{define "content"}}{{t "no.such.key"}}{{end}}`})
	if _, err := parseTemplates(bad, cat); err == nil || !strings.Contains(err.Error(), "no.such.key") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := loadCatalog(copyFS("catalog/en.json", nil)); err == nil {
		t.Error("a missing en.json passed")
	}
	extraKey := copyFS("", map[string]string{"catalog/de.json": `{"not.in.english": "x"}`})
	if _, err := loadCatalog(extraKey); err == nil {
		t.Error("a translation with a key unknown to en.json passed")
	}
}

func TestNewValidatesOptions(t *testing.T) {
	_, err := New(Options{BaseURL: "ftp://x", Keys: [][]byte{[]byte("short")}, Site: Site{Color: "red;}", LogoURL: "javascript:x"}})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, want := range []string{"Accounts", "Store", "BaseURL", "key 0", "colour", "logo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestLinkify(t *testing.T) {
	got := linkify("Open https://id.example.org/verify?token=abc. Thanks")
	if len(got) != 3 || got[1].URL != "https://id.example.org/verify?token=abc" || got[2].Text != ". Thanks" {
		t.Fatalf("%#v", got)
	}
}

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }
