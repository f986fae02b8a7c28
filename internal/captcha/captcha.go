// Package captcha checks registration captchas with the "siteverify" API that
// hCaptcha, Cloudflare Turnstile and Google reCAPTCHA v2 share: the form
// carries a response token, and the server POSTs it with its secret to the
// provider, which answers {"success": true|false}. Off by default: the web
// package runs without it.
package captcha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// provider is what differs between the services.
type provider struct {
	script    string // the widget script
	origins   []string
	class     string // the widget element's class
	field     string // the form field holding the response token
	verifyURL string
}

var providers = map[string]provider{
	"hcaptcha": {
		script: "https://js.hcaptcha.com/1/api.js", origins: []string{"https://js.hcaptcha.com", "https://hcaptcha.com", "https://*.hcaptcha.com"},
		class: "h-captcha", field: "h-captcha-response", verifyURL: "https://api.hcaptcha.com/siteverify",
	},
	"turnstile": {
		script: "https://challenges.cloudflare.com/turnstile/v0/api.js", origins: []string{"https://challenges.cloudflare.com"},
		class: "cf-turnstile", field: "cf-turnstile-response", verifyURL: "https://challenges.cloudflare.com/turnstile/v0/siteverify",
	},
	"recaptcha": {
		script: "https://www.google.com/recaptcha/api.js", origins: []string{"https://www.google.com", "https://www.gstatic.com"},
		class: "g-recaptcha", field: "g-recaptcha-response", verifyURL: "https://www.google.com/recaptcha/api/siteverify",
	},
}

// Providers lists the provider names New accepts.
func Providers() []string { return []string{"hcaptcha", "recaptcha", "turnstile"} }

// Captcha is one configured provider. It satisfies web.Captcha.
type Captcha struct {
	p       provider
	siteKey string
	secret  string
	client  *http.Client
}

// New returns the captcha of provider name. verifyURL, when not empty,
// replaces the provider's siteverify endpoint (tests).
func New(name, siteKey, secret, verifyURL string) (*Captcha, error) {
	p, ok := providers[name]
	if !ok {
		return nil, fmt.Errorf("captcha: unknown provider %q (want one of %s)", name, strings.Join(Providers(), ", "))
	}
	if siteKey == "" || secret == "" {
		return nil, errors.New("captcha: site key and secret are required")
	}
	if verifyURL != "" {
		p.verifyURL = verifyURL
	}
	return &Captcha{p: p, siteKey: siteKey, secret: secret, client: &http.Client{Timeout: 10 * time.Second}}, nil
}

// Origins are the origins the page must allow in its Content-Security-Policy
// (script, frame and connect sources).
func (c *Captcha) Origins() []string { return c.p.origins }

// Widget is the HTML placed in the registration form.
func (c *Captcha) Widget(*http.Request) template.HTML {
	return template.HTML(fmt.Sprintf(`<script src="%s" async defer></script><div class="%s" data-sitekey="%s"></div>`,
		template.HTMLEscapeString(c.p.script), c.p.class, template.HTMLEscapeString(c.siteKey)))
}

// Verify asks the provider whether the response in r's form is valid.
func (c *Captcha) Verify(ctx context.Context, r *http.Request, clientIP string) (bool, error) {
	token := r.PostFormValue(c.p.field)
	if token == "" || len(token) > 4096 {
		return false, nil
	}
	form := url.Values{"secret": {c.secret}, "response": {token}}
	if clientIP != "" {
		form.Set("remoteip", clientIP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.p.verifyURL, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("captcha: siteverify: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("captcha: siteverify answered %s", resp.Status)
	}
	var out struct {
		Success bool `json:"success"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return false, fmt.Errorf("captcha: siteverify: %w", err)
	}
	return out.Success, nil
}
