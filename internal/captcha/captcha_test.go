package captcha

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The siteverify double follows the providers' published API: a form POST
// with secret, response and remoteip, answered with {"success": bool}.
func TestVerify(t *testing.T) {
	var got url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = r.PostForm
		if r.PostForm.Get("secret") == "s3cret" && r.PostForm.Get("response") == "good" {
			w.Write([]byte(`{"success": true}`))
			return
		}
		w.Write([]byte(`{"success": false, "error-codes": ["invalid-input-response"]}`))
	}))
	defer srv.Close()
	for _, name := range Providers() {
		c, err := New(name, "site", "s3cret", srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			token string
			want  bool
		}{{"good", true}, {"bad", false}, {"", false}} {
			form := url.Values{c.p.field: {tc.token}}
			r := httptest.NewRequest("POST", "/register", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			ok, err := c.Verify(context.Background(), r, "192.0.2.1")
			if err != nil || ok != tc.want {
				t.Errorf("%s %q: got %v, %v; want %v", name, tc.token, ok, err, tc.want)
			}
			if tc.token != "" && got.Get("remoteip") != "192.0.2.1" {
				t.Errorf("%s: remoteip not sent: %v", name, got)
			}
		}
		if w := string(c.Widget(nil)); !strings.Contains(w, `data-sitekey="site"`) || !strings.Contains(w, c.p.class) {
			t.Errorf("%s widget: %s", name, w)
		}
	}
	if _, err := New("nope", "a", "b", ""); err == nil {
		t.Error("unknown provider accepted")
	}
}

func TestVerifyProviderDown(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	c, _ := New("hcaptcha", "site", "s", srv.URL)
	r := httptest.NewRequest("POST", "/register", strings.NewReader("h-captcha-response=x"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ok, err := c.Verify(context.Background(), r, ""); ok || err == nil {
		t.Fatalf("provider down: got %v, %v; want refusal with an error", ok, err)
	}
}
