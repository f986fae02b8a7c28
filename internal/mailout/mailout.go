// Package mailout writes and sends the mail idbridge itself sends to members:
// email verification, password reset and the notices about account changes.
//
// Mailer renders a message from embedded templates (text/template for the
// plain text part, html/template for the HTML part, as RFC 2046
// multipart/alternative with RFC 5322 headers), applies a per-address rate
// limit, and queues it in the store. Sender takes due mail from that queue and
// hands it to a Delivery: the smarthost, through ViaCourier and the SMTP
// client of internal/forward/courier (RFC 5321 submission, STARTTLS per RFC
// 3207 or implicit TLS per RFC 8314, AUTH PLAIN per RFC 4954), or, in dev
// mode, the DevOutbox that keeps it in the store only. A transient
// failure leaves the message queued for a later attempt; the member's request
// never waits for delivery.
package mailout

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/store"
)

// Templates are the names Send accepts.
var Templates = []string{
	"verify_email", "reset_password", "email_taken",
	"change_email_verify", "email_changed_notice", "password_changed",
}

//go:embed templates
var templateFS embed.FS

// Config is what Mailer needs.
type Config struct {
	From       string        // "Example ID <noreply@id.example.org>" (mail_out.from)
	SiteName   string        // shown in subjects and bodies; default: the From display name or "idbridge"
	BaseURL    string        // the site's address, in the footer
	RateLimit  int           // mails per address per RateWindow; default 5
	RateWindow time.Duration // default 1h
}

// Mailer renders and queues mail. It is safe for concurrent use.
type Mailer struct {
	st       store.Store
	cfg      Config
	from     *mail.Address
	hostname string // Message-ID right-hand side
	log      *slog.Logger
	met      *metrics.Metrics
	text     map[string]*texttemplate.Template
	html     map[string]*htmltemplate.Template

	mu     sync.Mutex
	clock  func() time.Time
	notify func()
}

// New parses the templates and checks that each renders. log and met may be nil.
func New(st store.Store, cfg Config, log *slog.Logger, met *metrics.Metrics) (*Mailer, error) {
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("mail_out.from %q: %w", cfg.From, err)
	}
	if cfg.SiteName == "" {
		cfg.SiteName = from.Name
	}
	if cfg.SiteName == "" {
		cfg.SiteName = "idbridge"
	}
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 5
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if met == nil {
		met = metrics.New()
	}
	m := &Mailer{
		st: st, cfg: cfg, from: from, log: log, met: met, clock: time.Now,
		hostname: from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		text:     map[string]*texttemplate.Template{},
		html:     map[string]*htmltemplate.Template{},
	}
	for _, name := range Templates {
		t, err := texttemplate.New(name+".txt").Option("missingkey=zero").ParseFS(templateFS, "templates/"+name+".txt")
		if err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
		h, err := htmltemplate.New("layout.html").Option("missingkey=zero").ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("mail template %s: %w", name, err)
		}
		m.text[name], m.html[name] = t, h
		if _, _, err := m.Render("member@example.org", name, map[string]string{"url": "https://example.org/x", "username": "x"}); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SetClock replaces the clock (tests).
func (m *Mailer) SetClock(now func() time.Time) {
	m.mu.Lock()
	m.clock = now
	m.mu.Unlock()
}

// OnQueued sets a function called after each queued mail, such as a
// Sender's Wake, so that it goes out without waiting for the next poll.
func (m *Mailer) OnQueued(f func()) {
	m.mu.Lock()
	m.notify = f
	m.mu.Unlock()
}

func (m *Mailer) now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clock().UTC()
}

// From returns the envelope sender: the address of Config.From.
func (m *Mailer) From() string { return m.from.Address }

// Send renders template tmpl with data for the address to and queues it. When
// the address has had RateLimit mails in RateWindow the mail is dropped: this
// is logged and counted, and Send returns nil, so that the member's request
// looks the same. It implements account.Mailer.
func (m *Mailer) Send(ctx context.Context, to, tmpl string, data map[string]string) error {
	if _, ok := m.text[tmpl]; !ok {
		return fmt.Errorf("mailout: unknown template %q", tmpl)
	}
	addr, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("mailout: recipient: %w", err)
	}
	now := m.now()
	c, err := m.st.Hit(ctx, "mail:"+strings.ToLower(addr.Address), now, m.cfg.RateWindow)
	if err != nil {
		return fmt.Errorf("mailout: rate limit: %w", err)
	}
	if c.Count > m.cfg.RateLimit {
		m.met.MailsSent.WithLabelValues(tmpl, "rate_limited").Inc()
		m.log.WarnContext(ctx, "mailout: rate limit reached, mail dropped", "template", tmpl, "to", addr.Address, "count", c.Count)
		return nil
	}
	msg, _, err := m.Render(addr.Address, tmpl, data)
	if err != nil {
		return err
	}
	id, err := m.st.EnqueueMail(ctx, store.OutMail{
		From: m.from.Address, To: addr.Address, Data: msg, NextAttempt: now, CreatedAt: now,
	})
	if err != nil {
		return fmt.Errorf("mailout: queue: %w", err)
	}
	m.met.MailsSent.WithLabelValues(tmpl, "queued").Inc()
	m.log.InfoContext(ctx, "mailout: queued", "template", tmpl, "id", id)
	m.mu.Lock()
	f := m.notify
	m.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

// TemplateHeader names the template a queued message came from.
const TemplateHeader = "X-Idbridge-Template"

// Render returns the whole message for to, and its subject.
func (m *Mailer) Render(to, tmpl string, data map[string]string) ([]byte, string, error) {
	t, h := m.text[tmpl], m.html[tmpl]
	if t == nil || h == nil {
		return nil, "", fmt.Errorf("mailout: unknown template %q", tmpl)
	}
	d := make(map[string]string, len(data)+3)
	for k, v := range data {
		d[k] = v
	}
	d["site"], d["to"] = m.cfg.SiteName, to
	if d["base_url"] == "" {
		d["base_url"] = m.cfg.BaseURL
	}
	var subj, text, html bytes.Buffer
	if err := t.ExecuteTemplate(&subj, "subject", d); err != nil {
		return nil, "", fmt.Errorf("mail template %s: subject: %w", tmpl, err)
	}
	if err := t.Execute(&text, d); err != nil {
		return nil, "", fmt.Errorf("mail template %s: text: %w", tmpl, err)
	}
	if err := h.Execute(&html, d); err != nil {
		return nil, "", fmt.Errorf("mail template %s: html: %w", tmpl, err)
	}
	subject := strings.Join(strings.Fields(subj.String()), " ")

	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.from.String())
	hdr("To", (&mail.Address{Address: to}).String())
	hdr("Subject", mime.QEncoding.Encode("utf-8", subject))
	hdr("Date", m.now().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+randomHex(16)+"@"+m.hostname+">")
	hdr("MIME-Version", "1.0")
	hdr("Auto-Submitted", "auto-generated")
	hdr(TemplateHeader, tmpl)
	hdr("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	b.WriteString("\r\n")
	for _, part := range []struct {
		ctype string
		body  []byte
	}{{"text/plain; charset=utf-8", text.Bytes()}, {"text/html; charset=utf-8", html.Bytes()}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, "", fmt.Errorf("mailout: %w", err)
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write(crlf(part.body)); err != nil {
			return nil, "", fmt.Errorf("mailout: %w", err)
		}
		if err := qp.Close(); err != nil {
			return nil, "", fmt.Errorf("mailout: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("mailout: %w", err)
	}
	return b.Bytes(), subject, nil
}

// crlf turns bare LF line ends into CRLF.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrPermanent marks a delivery failure that retrying cannot fix (a 5xx
// reply). Deliveries wrap it.
var ErrPermanent = errors.New("permanent failure")
