package mailout

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/store"
)

// Delivery hands one message to the next hop. An error wrapping ErrPermanent
// means retrying cannot help; any other error is temporary.
type Delivery interface {
	Deliver(ctx context.Context, from, to string, data []byte) error
}

// DevOutbox is the delivery of dev mode: the message stays in the store (the
// web's /dev/mail lists it) and is marked sent without leaving the machine.
type DevOutbox struct{}

// Deliver does nothing.
func (DevOutbox) Deliver(context.Context, string, string, []byte) error { return nil }

// TLS modes of a smarthost.
const (
	TLSRequired      = "required"      // STARTTLS, verified certificate; no STARTTLS: temporary failure
	TLSOpportunistic = "opportunistic" // STARTTLS (verified) when offered, clear text otherwise
	TLSNone          = "none"          // clear text
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465)
)

// SmarthostConfig is mail_out.smarthost.
type SmarthostConfig struct {
	Address            string // host:port
	TLS                string // required (default) | opportunistic | none | implicit
	Username, Password string // AUTH PLAIN when Username is set
	HeloName           string // EHLO name; default "localhost"
	Timeout            time.Duration
	TLSConfig          *tls.Config // optional: root CAs (tests), client certificates
}

// Smarthost delivers through a submission server.
type Smarthost struct {
	cfg      SmarthostConfig
	host     string
	loopback bool
}

var _ Delivery = (*Smarthost)(nil)
var _ Delivery = DevOutbox{}

// NewSmarthost checks cfg. It refuses AUTH with TLS none unless the smarthost
// is a loopback address.
func NewSmarthost(cfg SmarthostConfig) (*Smarthost, error) {
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("mail_out.smarthost.address %q: %w", cfg.Address, err)
	}
	if cfg.TLS == "" {
		cfg.TLS = TLSRequired
	}
	switch cfg.TLS {
	case TLSRequired, TLSOpportunistic, TLSNone, TLSImplicit:
	default:
		return nil, fmt.Errorf("mail_out.smarthost.tls %q: want required, opportunistic, none or implicit", cfg.TLS)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.HeloName == "" {
		cfg.HeloName = "localhost"
	}
	h := &Smarthost{cfg: cfg, host: host, loopback: isLoopback(host)}
	if cfg.Username != "" && cfg.TLS == TLSNone && !h.loopback {
		return nil, fmt.Errorf("mail_out.smarthost: refusing AUTH over a clear connection to %s: set tls to required or implicit", host)
	}
	return h, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *Smarthost) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.cfg.TLSConfig != nil {
		c = h.cfg.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = h.host
	}
	return c
}

// errNoStartTLS is go-smtp's message when STARTTLS is not offered.
const errNoStartTLS = "server doesn't support STARTTLS"

// Deliver sends one message.
func (h *Smarthost) Deliver(ctx context.Context, from, to string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	c, secure, err := h.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if deadline, ok := ctx.Deadline(); ok {
		stop := context.AfterFunc(ctx, func() { c.Close() })
		defer stop()
		c.CommandTimeout = time.Until(deadline)
		c.SubmissionTimeout = time.Until(deadline)
	}
	if err := c.Hello(h.cfg.HeloName); err != nil {
		return classify("EHLO", err)
	}
	if h.cfg.Username != "" {
		if !secure && !h.loopback {
			return fmt.Errorf("smarthost %s: refusing AUTH over a clear connection", h.cfg.Address)
		}
		if !c.SupportsAuth(sasl.Plain) {
			return fmt.Errorf("smarthost %s: AUTH PLAIN is not offered", h.cfg.Address)
		}
		if err := c.Auth(sasl.NewPlainClient("", h.cfg.Username, h.cfg.Password)); err != nil {
			return classify("AUTH", err)
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(data)); err != nil {
		return classify("send", err)
	}
	if err := c.Quit(); err != nil {
		// The message is accepted; a failed QUIT does not change that.
		return nil
	}
	return nil
}

// connect opens the connection in the configured TLS mode and reports whether
// it is encrypted.
func (h *Smarthost) connect(ctx context.Context) (*smtp.Client, bool, error) {
	d := &net.Dialer{}
	dial := func() (net.Conn, error) {
		conn, err := d.DialContext(ctx, "tcp", h.cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("smarthost %s: %w", h.cfg.Address, err)
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		return conn, nil
	}
	switch h.cfg.TLS {
	case TLSImplicit:
		conn, err := dial()
		if err != nil {
			return nil, false, err
		}
		tc := tls.Client(conn, h.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, false, fmt.Errorf("smarthost %s: TLS: %w", h.cfg.Address, err)
		}
		return smtp.NewClient(tc), true, nil
	case TLSNone:
		conn, err := dial()
		if err != nil {
			return nil, false, err
		}
		return smtp.NewClient(conn), false, nil
	}
	conn, err := dial()
	if err != nil {
		return nil, false, err
	}
	c, err := smtp.NewClientStartTLS(conn, h.tlsConfig())
	if err == nil {
		return c, true, nil
	}
	if h.cfg.TLS == TLSOpportunistic && strings.Contains(err.Error(), errNoStartTLS) {
		conn, err := dial()
		if err != nil {
			return nil, false, err
		}
		return smtp.NewClient(conn), false, nil
	}
	if strings.Contains(err.Error(), errNoStartTLS) {
		return nil, false, fmt.Errorf("smarthost %s: STARTTLS is required but not offered", h.cfg.Address)
	}
	return nil, false, classify("STARTTLS", err)
}

// classify wraps err, marking 5xx replies permanent.
func classify(stage string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && se.Code >= 500 && se.Code < 600 {
		return fmt.Errorf("smarthost %s: %w: %w", stage, ErrPermanent, err)
	}
	return fmt.Errorf("smarthost %s: %w", stage, err)
}

// SenderConfig tunes the queue runner.
type SenderConfig struct {
	Poll     time.Duration // how often to look for due mail; default 10s
	Lease    time.Duration // how long a claimed message is ours; default 5m
	Batch    int           // messages per claim; default 20
	Backoff  time.Duration // first retry delay, doubled each attempt; default 1m
	MaxDelay time.Duration // longest retry delay; default 1h
	Lifetime time.Duration // give up this long after queueing; default 48h
}

// Sender delivers queued mail. Several nodes may each run one: ClaimMail's
// lease keeps them from sending one message twice.
type Sender struct {
	st   store.Store
	d    Delivery
	cfg  SenderConfig
	log  *slog.Logger
	met  *metrics.Metrics
	wake chan struct{}

	mu    sync.Mutex
	clock func() time.Time
}

// NewSender returns a Sender that delivers through d. log and met may be nil.
func NewSender(st store.Store, d Delivery, cfg SenderConfig, log *slog.Logger, met *metrics.Metrics) *Sender {
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&cfg.Poll, 10*time.Second)
	def(&cfg.Lease, 5*time.Minute)
	def(&cfg.Backoff, time.Minute)
	def(&cfg.MaxDelay, time.Hour)
	def(&cfg.Lifetime, 48*time.Hour)
	if cfg.Batch <= 0 {
		cfg.Batch = 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if met == nil {
		met = metrics.New()
	}
	return &Sender{st: st, d: d, cfg: cfg, log: log, met: met, wake: make(chan struct{}, 1), clock: time.Now}
}

// SetClock replaces the clock (tests).
func (s *Sender) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.clock = now
	s.mu.Unlock()
}

func (s *Sender) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock().UTC()
}

// Wake makes Run look at the queue now (Mailer.OnQueued).
func (s *Sender) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers due mail until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		for {
			n, err := s.RunOnce(ctx)
			if err != nil {
				s.log.ErrorContext(ctx, "mailout: queue run", "err", err)
			}
			if err != nil || n < s.cfg.Batch || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// RunOnce claims one batch of due mail and tries each message once. It
// returns how many it claimed.
func (s *Sender) RunOnce(ctx context.Context) (int, error) {
	now := s.now()
	batch, err := s.st.ClaimMail(ctx, now, now.Add(s.cfg.Lease), s.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("claim mail: %w", err)
	}
	for _, m := range batch {
		s.deliver(ctx, m)
	}
	return len(batch), nil
}

func (s *Sender) deliver(ctx context.Context, m store.OutMail) {
	tmpl := templateOf(m.Data)
	err := s.d.Deliver(ctx, m.From, m.To, m.Data)
	now := s.now()
	if err == nil {
		if err := s.st.MarkMailSent(ctx, m.ID, now); err != nil {
			s.log.ErrorContext(ctx, "mailout: mark sent", "id", m.ID, "err", err)
		}
		s.met.MailsSent.WithLabelValues(tmpl, "sent").Inc()
		s.log.InfoContext(ctx, "mailout: sent", "id", m.ID, "template", tmpl)
		return
	}
	failed := errors.Is(err, ErrPermanent) || !now.Before(m.CreatedAt.Add(s.cfg.Lifetime))
	delay := s.cfg.Backoff
	for i := 0; i < m.Attempts && delay < s.cfg.MaxDelay; i++ {
		delay *= 2
	}
	delay = min(delay, s.cfg.MaxDelay)
	if err := s.st.MarkMailRetry(ctx, m.ID, now.Add(delay), err.Error(), failed); err != nil {
		s.log.ErrorContext(ctx, "mailout: mark retry", "id", m.ID, "err", err)
	}
	if failed {
		s.met.MailsSent.WithLabelValues(tmpl, "failed").Inc()
		s.log.ErrorContext(ctx, "mailout: gave up", "id", m.ID, "template", tmpl, "attempts", m.Attempts+1, "err", err)
		return
	}
	s.met.MailsSent.WithLabelValues(tmpl, "retry").Inc()
	s.log.WarnContext(ctx, "mailout: will retry", "id", m.ID, "template", tmpl, "in", delay, "err", err)
}

// templateOf reads the TemplateHeader of a queued message.
func templateOf(data []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "unknown"
	}
	if t := msg.Header.Get(TemplateHeader); t != "" {
		return t
	}
	return "unknown"
}
