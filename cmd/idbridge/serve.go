package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/captcha"
	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/forward/courier"
	"github.com/idbridge/idbridge/internal/mailout"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/web"
)

// demoAdmin is the account serve --dev creates (and whose password it resets
// at each start, so that the printed login always works).
const demoAdmin = "demoadmin"

func cmdServe(args []string, e env) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		configPath, listen, smtpListen, dataDir string
		dev                                     bool
	)
	fs.StringVar(&configPath, "config", "", "config file (default $IDBRIDGE_CONFIG)")
	fs.BoolVar(&dev, "dev", false, "run the embedded demo set-up; needs no config")
	fs.StringVar(&listen, "listen", "", "with --dev: HTTP address (default 127.0.0.1:8080; port 0 picks a free one)")
	fs.StringVar(&smtpListen, "smtp-listen", "", "with --dev: SMTP address (default 127.0.0.1:2525, or a free port when --listen has port 0)")
	fs.StringVar(&dataDir, "data-dir", "", "with --dev: keep state here (default: a new temporary folder)")
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("serve takes no arguments")
	}
	if configPath == "" && !dev {
		configPath = envValue(e.environ, "IDBRIDGE_CONFIG")
	}
	if !dev && configPath == "" {
		return usagef("serve needs --config FILE (or IDBRIDGE_CONFIG), or --dev")
	}
	if !dev && (listen != "" || smtpListen != "" || dataDir != "") {
		return usagef("--listen, --smtp-listen and --data-dir go with --dev; set http.listen, forward.listen and data_dir in the config")
	}
	if dev && configPath != "" {
		return usagef("--dev needs no --config")
	}

	var cfg *config.Config
	var httpLn net.Listener
	if dev {
		if dataDir == "" {
			if dataDir, err = os.MkdirTemp("", "idbridge-dev-"); err != nil {
				return err
			}
		} else if err := os.MkdirAll(dataDir, 0o750); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		cfg = config.Dev(dataDir)
		if err := cfg.ApplyEnv(e.environ); err != nil {
			return err
		}
		if listen == "" {
			listen = config.DevHTTPListen
		}
		if smtpListen == "" {
			smtpListen = config.DevSMTPListen
			if _, port, _ := net.SplitHostPort(listen); port == "0" {
				smtpListen = "127.0.0.1:0"
			}
		}
		if httpLn, err = net.Listen("tcp", listen); err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		cfg.SetListen(httpLn.Addr().String())
		cfg.Forward.Listen = smtpListen
	} else {
		if cfg, err = config.Load(configPath, e.environ); err != nil {
			return err
		}
		if httpLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return fmt.Errorf("http.listen: %w", err)
		}
	}
	defer httpLn.Close()

	log := newLogger(e.stderr, cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	log.Info("starting", "config", cfg)
	s, err := a.build(ctx)
	if err != nil {
		return err
	}

	var smtpAddr string
	if s.smtpLn != nil {
		smtpAddr = s.smtpLn.Addr().String()
	}
	if dev {
		pw, err := a.ensureDemoAdmin(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "idbridge: listening on %s\n", cfg.BaseURL)
		if smtpAddr != "" {
			fmt.Fprintf(e.stdout, "idbridge: smtp on %s\n", smtpAddr)
		}
		fmt.Fprintf(e.stdout, "idbridge: demo admin: %s / %s\n", demoAdmin, pw)
		fmt.Fprintf(e.stdout, "idbridge: data in %s\n", cfg.DataDir)
	} else {
		fmt.Fprintf(e.stdout, "idbridge: listening on http://%s\n", httpLn.Addr())
		if smtpAddr != "" {
			fmt.Fprintf(e.stdout, "idbridge: smtp on %s\n", smtpAddr)
		}
	}
	return s.run(ctx, httpLn)
}

// servers is what serve runs.
type servers struct {
	a       *app
	web     *web.Server
	handler http.Handler
	sender  *mailout.Sender
	smtpLn  net.Listener
	loops   []func(context.Context) error // run until ctx ends
	reload  []func(context.Context) error // on SIGHUP
	closers []func()
}

// build creates every server and background loop of serve.
func (a *app) build(ctx context.Context) (*servers, error) {
	cfg := a.cfg
	s := &servers{a: a}

	var delivery mailout.Delivery = mailout.DevOutbox{}
	if !cfg.DevMode {
		sh := cfg.MailOut.Smarthost
		var pw string
		if sh.PasswordFile != "" {
			b, err := config.ReadSecretFile(sh.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("mail_out.smarthost.password_file: %w", err)
			}
			pw = string(b)
		}
		mode, err := courier.ParseTLSMode(sh.TLS)
		if err != nil {
			return nil, fmt.Errorf("mail_out.smarthost.tls: %w", err)
		}
		// The same SMTP client as forwarded mail's smarthost delivery.
		delivery = mailout.ViaCourier(&courier.Smarthost{Address: sh.Address, TLS: mode,
			Username: sh.Username, Password: pw, Hostname: cfg.Forward.Hostname})
	}
	s.sender = mailout.NewSender(a.st, delivery, mailout.SenderConfig{Lifetime: cfg.MailOut.RetryLifetime.Duration()},
		a.log.With("part", "mailout"), a.met)
	a.mailer.OnQueued(s.sender.Wake)
	s.loops = append(s.loops, s.sender.Run, func(ctx context.Context) error {
		a.maintain(ctx, 10*time.Minute)
		return nil
	})

	webKey, err := a.secret(ctx, "web-hmac-key", 32)
	if err != nil {
		return nil, fmt.Errorf("web key: %w", err)
	}
	proxies, err := parsePrefixes(cfg.HTTP.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("http.trusted_proxies: %w", err)
	}
	minAge := time.Duration(cfg.Accounts.RegisterMinSeconds) * time.Second
	if cfg.Accounts.RegisterMinSeconds == 0 {
		minAge = -1
	}
	portal := &portal{}
	var captchaHook web.Captcha
	if c := cfg.Accounts.Captcha; c.Provider != "" {
		secret, err := config.ReadSecretFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("accounts.captcha.secret_file: %w", err)
		}
		cp, err := captcha.New(c.Provider, c.SiteKey, string(secret), "")
		if err != nil {
			return nil, fmt.Errorf("accounts.captcha: %w", err)
		}
		captchaHook = cp
	}
	ws, err := web.New(web.Options{
		Accounts:       a.accounts,
		Store:          a.st,
		Metrics:        a.met,
		Log:            a.log.With("part", "web"),
		BaseURL:        cfg.BaseURL,
		VirtualDomain:  cfg.VirtualDomain,
		Site:           web.Site{Name: cfg.Site.Name, LogoURL: cfg.Site.LogoURL, Color: cfg.Site.Color},
		TrustedProxies: proxies,
		Keys:           [][]byte{webKey},
		RegisterMinAge: minAge,
		RegisterMaxAge: cfg.Accounts.RegisterMaxAge.Duration(),
		Captcha:        captchaHook,
		Dev:            cfg.DevMode,
		Portal:         portal.links,
	})
	if err != nil {
		return nil, err
	}
	s.web = ws
	ws.Handle("GET /metrics", a.met.Handler())
	if err := a.buildSAML(ctx, s, portal); err != nil {
		return nil, err
	}
	if err := a.buildForward(ctx, s); err != nil {
		return nil, err
	}
	s.handler = ws.Handler()
	return s, nil
}

// portal collects the services the portal page lists.
type portal struct {
	sources []func(r *http.Request, a store.Account) []web.PortalLink
}

func (p *portal) links(r *http.Request, a store.Account) []web.PortalLink {
	var out []web.PortalLink
	for _, f := range p.sources {
		out = append(out, f(r, a)...)
	}
	return out
}

func (s *servers) run(ctx context.Context, httpLn net.Listener) error {
	log := s.a.log
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2+len(s.loops))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := hs.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	for _, loop := range s.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loop(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
			}
		}()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-hup:
			for _, f := range s.reload {
				if err := f(ctx); err != nil {
					log.Error("reload", "err", err)
				}
			}
			log.Info("reloaded")
		}
	}
	log.Info("shutting down")
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	hs.Shutdown(sctx)
	for _, c := range s.closers {
		c()
	}
	// Every part stops on ctx; should one not (a stuck peer), the process
	// still exits: a queued message is on disk, and systemd would kill us.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		log.Error("shutdown: some parts did not stop within 20s; exiting anyway")
	}
	return runErr
}

// ensureDemoAdmin creates the --dev admin account when it is missing and gives
// it a new random password, which serve prints.
func (a *app) ensureDemoAdmin(ctx context.Context) (string, error) {
	pwBytes, err := a.secretOnce(16)
	if err != nil {
		return "", err
	}
	pw := pwBytes
	_, _, err = a.accounts.Get(ctx, demoAdmin)
	switch {
	case err == nil:
		if err := a.accounts.SetPassword(ctx, demoAdmin, pw, "dev"); err != nil {
			return "", fmt.Errorf("demo admin: %w", err)
		}
	case errors.Is(err, store.ErrNotFound):
		_, err := a.accounts.Create(ctx, account.CreateInput{Username: demoAdmin, FirstName: "Demo", LastName: "Admin",
			Email: "demoadmin@example.com", Password: pw, Admin: true}, "dev")
		var ve *account.ValidationError
		if errors.As(err, &ve) && ve.Has("username.taken") {
			// Another --dev node on the same database created it meanwhile.
			err = a.accounts.SetPassword(ctx, demoAdmin, pw, "dev")
		}
		if err != nil {
			return "", fmt.Errorf("demo admin: %w", err)
		}
	default:
		return "", fmt.Errorf("demo admin: %w", err)
	}
	return pw, nil
}

// secretOnce returns a random password of n bytes of entropy, in a form easy to type.
func (a *app) secretOnce(n int) (string, error) {
	b := make([]byte, n)
	if _, err := randRead(b); err != nil {
		return "", err
	}
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	var sb strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String(), nil
}
