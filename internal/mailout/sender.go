package mailout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"sync"
	"time"

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

// smtpCourier is an SMTP client that reports whether a failure is permanent;
// internal/forward/courier's Smarthost is one (the same client as forwarded
// mail, with its TLS modes and its rule that AUTH never crosses a clear
// connection except to loopback).
type smtpCourier interface {
	Deliver(ctx context.Context, from, to string, data []byte) (err error, permanent bool)
}

// ViaCourier delivers through c, marking its permanent failures with
// ErrPermanent.
func ViaCourier(c smtpCourier) Delivery { return courierDelivery{c} }

type courierDelivery struct{ c smtpCourier }

func (d courierDelivery) Deliver(ctx context.Context, from, to string, data []byte) error {
	err, permanent := d.c.Deliver(ctx, from, to, data)
	if err != nil && permanent {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	return err
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
