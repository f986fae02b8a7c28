package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/keys"
	"github.com/idbridge/idbridge/internal/mailout"
	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/password"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/open"
)

// app is the parts every command shares: the store and the account rules.
// serve adds the network servers on top (serve.go).
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	met      *metrics.Metrics
	st       store.Store
	mailer   *mailout.Mailer
	accounts *account.Service
	samlKeys *keys.Manager
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// quietLogger is the CLI's: warnings and errors only.
func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	if strings.HasPrefix(cfg.Store, "sqlite:") && cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data_dir: %w", err)
		}
	}
	st, err := open.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	a := &app{cfg: cfg, log: log, met: metrics.New(), st: st}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	a.mailer, err = mailout.New(st, mailout.Config{
		From:       cfg.MailOut.From,
		SiteName:   cfg.Site.Name,
		BaseURL:    cfg.BaseURL,
		RateLimit:  cfg.MailOut.RateLimit.PerAddress,
		RateWindow: cfg.MailOut.RateLimit.Window.Duration(),
	}, log.With("part", "mailout"), a.met)
	if err != nil {
		return nil, err
	}
	a.accounts = account.New(st, a.mailer, account.Config{
		BaseURL:       cfg.BaseURL,
		VirtualDomain: cfg.VirtualDomain,
		// Role addresses that go to the operator can never be usernames.
		Reserved:          append(append([]string(nil), cfg.Accounts.ReservedUsernames...), cfg.Forward.ReservedExtra...),
		UnverifiedTTL:     cfg.Accounts.UnverifiedTTL.Duration(),
		VerifyTTL:         cfg.Tokens.VerifyTTL.Duration(),
		ResetTTL:          cfg.Tokens.ResetTTL.Duration(),
		PasswordMinLength: cfg.Accounts.PasswordMinLength,
		Argon2: password.Params{
			MemoryKiB:   cfg.Accounts.Argon2.MemoryKiB,
			Iterations:  cfg.Accounts.Argon2.Iterations,
			Parallelism: cfg.Accounts.Argon2.Parallelism,
		},
		Throttle: account.ThrottleConfig{
			MaxFailures:   cfg.Throttle.MaxFailures,
			WaitIncrement: cfg.Throttle.WaitIncrement.Duration(),
			MaxWait:       cfg.Throttle.MaxWait.Duration(),
			ResetAfter:    cfg.Throttle.ResetAfter.Duration(),
		},
		IdleTimeout:      cfg.Sessions.IdleTimeout.Duration(),
		AbsoluteLifetime: cfg.Sessions.AbsoluteLifetime.Duration(),
	}, log.With("part", "account"), a.met)
	a.samlKeys = keys.New(st, "saml", cfg.BaseURL+"/saml/metadata")
	ok = true
	return a, nil
}

func (a *app) close() {
	if a.st != nil {
		a.st.Close()
	}
}

// secret returns a named random secret kept in the store (every node shares it).
func (a *app) secret(ctx context.Context, name string, n int) ([]byte, error) {
	return a.st.GetOrCreateSecret(ctx, name, func() ([]byte, error) {
		b := make([]byte, n)
		_, err := rand.Read(b)
		return b, err
	})
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", s)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// maintain runs the account housekeeping every interval until ctx ends.
func (a *app) maintain(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := a.accounts.Maintain(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("maintenance", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

var randRead = rand.Read
