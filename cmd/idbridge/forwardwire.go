package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/forward"
	"github.com/idbridge/idbridge/internal/forward/courier"
	"github.com/idbridge/idbridge/internal/forward/queue"
	"github.com/idbridge/idbridge/internal/forward/srs"
	"github.com/idbridge/idbridge/internal/keys"
	"github.com/idbridge/idbridge/internal/metrics"
	"github.com/idbridge/idbridge/internal/resolver"
	"github.com/idbridge/idbridge/internal/socketmap"
	"github.com/idbridge/idbridge/internal/store"
)

func queueDir(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "queue") }

// directory answers the forwarder's and socketmap's question: the real email
// of a verified, unlocked member, by username.
type directory struct{ st store.Store }

func (d directory) Lookup(ctx context.Context, localPart string) (string, bool, error) {
	a, err := d.st.GetAccountByUsername(ctx, localPart)
	if errors.Is(err, store.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if a.Deleted || a.Locked || !a.EmailVerified || a.Email == "" {
		return "", false, nil
	}
	return a.Email, true, nil
}

// queueAdapter gives the SMTP server the queue's Put.
type queueAdapter struct{ q *queue.Queue }

func (a queueAdapter) Put(ctx context.Context, from string, to, original []string, data []byte) (string, error) {
	return a.q.Put(ctx, queue.Envelope{From: from, To: to, Original: original}, data)
}

// srsSecret is the SRS key, shared by every node through the store so that a
// bounce reaching any node decodes.
func (a *app) srs(ctx context.Context) (*srs.SRS, error) {
	secret, err := a.secret(ctx, "srs-secret", 32)
	if err != nil {
		return nil, fmt.Errorf("srs secret: %w", err)
	}
	days := int(a.cfg.Forward.SRSMaxAge.Duration() / (24 * time.Hour))
	if days < 1 {
		days = 1
	}
	return srs.New([]byte(base64.RawStdEncoding.EncodeToString(secret)), a.cfg.Forward.SRSDomain, srs.WithMaxAge(days))
}

// dkimKeys holds the key of our own DKIM signature on forwarded mail.
func (a *app) dkimKeys() *keys.Manager {
	return keys.New(a.st, "dkim", a.cfg.Forward.DKIM.Selector+"._domainkey."+a.cfg.VirtualDomain)
}

func (a *app) buildForward(ctx context.Context, s *servers) error {
	cfg := a.cfg
	fw := cfg.Forward
	if fw.Listen == "" && fw.SocketmapListen == "" {
		return nil
	}
	log := a.log.With("part", "forward")
	dir := directory{a.st}
	rewriter, err := a.srs(ctx)
	if err != nil {
		return err
	}
	res, err := resolver.New(cfg.DNS.Servers)
	if err != nil {
		return fmt.Errorf("dns.servers: %w", err)
	}

	var q *queue.Queue
	if fw.Listen != "" {
		var next queue.Courier
		switch {
		case cfg.DevMode:
			next = courier.Dev(func(ctx context.Context, from, to string, data []byte) error {
				now := time.Now().UTC()
				id, err := a.st.EnqueueMail(ctx, store.OutMail{From: from, To: to, Data: data, CreatedAt: now, NextAttempt: now.Add(24 * time.Hour)})
				if err != nil {
					return err
				}
				return a.st.MarkMailSent(ctx, id, now)
			})
		case fw.Delivery == config.DeliverySmarthost:
			mode, err := courier.ParseTLSMode(fw.Smarthost.TLS)
			if err != nil {
				return fmt.Errorf("forward.smarthost.tls: %w", err)
			}
			var pw string
			if fw.Smarthost.PasswordFile != "" {
				b, err := config.ReadSecretFile(fw.Smarthost.PasswordFile)
				if err != nil {
					return fmt.Errorf("forward.smarthost.password_file: %w", err)
				}
				pw = string(b)
			}
			next = &courier.Smarthost{Address: fw.Smarthost.Address, TLS: mode, Username: fw.Smarthost.Username, Password: pw, Hostname: fw.Hostname}
		default:
			next = &courier.Direct{Resolver: res, Hostname: fw.Hostname, Port: fmt.Sprint(fw.DeliveryPort), Logger: log}
		}
		fwd := &courier.Forwarding{Next: next, SRS: rewriter}
		if fw.DKIM.Selector != "" {
			km := a.dkimKeys()
			if err := km.Ensure(ctx); err != nil {
				return fmt.Errorf("dkim key: %w", err)
			}
			kp, err := km.Active(ctx)
			if err != nil {
				return fmt.Errorf("dkim key: %w", err)
			}
			if fwd.Sign, err = courier.NewDKIMSigner(cfg.VirtualDomain, fw.DKIM.Selector, kp.Key); err != nil {
				return fmt.Errorf("dkim: %w", err)
			}
		}
		q, err = queue.Open(queue.Config{Dir: queueDir(cfg), Courier: fwd, Logger: log.With("sub", "queue"),
			Hostname: fw.Hostname, Lifetime: fw.QueueLifetime.Duration(), PerDomain: fw.DestinationConcurrency})
		if err != nil {
			return err
		}
		networks, err := parsePrefixes(fw.Allow.Networks)
		if err != nil {
			return fmt.Errorf("forward.allow.networks: %w", err)
		}
		var tlsCfg *tls.Config
		switch {
		case fw.TLS.CertFile != "":
			cert, err := tls.LoadX509KeyPair(fw.TLS.CertFile, fw.TLS.KeyFile)
			if err != nil {
				return fmt.Errorf("forward.tls: %w", err)
			}
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		case cfg.DevMode:
			cert, err := devCertificate(fw.Hostname)
			if err != nil {
				return err
			}
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		srv, err := forward.New(forward.Config{
			Listen: fw.Listen, Hostname: fw.Hostname, VirtualDomain: cfg.VirtualDomain, SRSDomain: fw.SRSDomain,
			OperatorAddress: fw.OperatorAddress, ReservedLocalParts: fw.ReservedExtra,
			AllowedNetworks: networks, IPRangesFiles: fw.Allow.IPRangesFiles, IPRangesURLs: fw.Allow.IPRangesURLs,
			IPRangesRefresh: fw.IPRangesRefresh.Duration(), AllowedDomains: fw.Allow.Domains, Resolver: res,
			MaxMessageBytes: int64(fw.MaxMessageBytes), MaxRecipients: fw.MaxRecipients,
			CommandTimeout: fw.CommandTimeout.Duration(), DataTimeout: fw.DataTimeout.Duration(),
			MaxConnections: fw.MaxConnections, MaxConnectionsPerIP: fw.MaxConnectionsPerIP, TLS: tlsCfg,
		}, dir, rewriter, queueAdapter{q}, log)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", fw.Listen)
		if err != nil {
			return fmt.Errorf("forward.listen: %w", err)
		}
		s.smtpLn = ln
		s.loops = append(s.loops, q.Run, func(ctx context.Context) error {
			err := srv.Serve(ln)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("smtp: %w", err)
		})
		s.closers = append(s.closers, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
			// Shutdown closes the listeners the SMTP server has taken up;
			// a stop that comes before Serve got that far must close it too.
			ln.Close()
		})
		s.reload = append(s.reload, srv.Reload)
		a.met.RegisterForward(func() metrics.ForwardStats {
			c, qs := srv.Counts(), q.Stats()
			return metrics.ForwardStats{Accepted: c.Accepted, Refused: c.Refused, Queued: qs.Queued,
				Delivered: qs.Delivered, Deferred: qs.Deferred, Bounced: qs.Bounced, Depth: qs.Depth}
		})
	}

	if fw.SocketmapListen != "" {
		roles := map[string]bool{}
		for _, r := range append(append([]string{}, forward.DefaultRoleLocalParts...), fw.ReservedExtra...) {
			roles[strings.ToLower(r)] = true
		}
		sm := socketmap.NewServer(func(ctx context.Context, address string) (string, bool, error) {
			local, domain, ok := strings.Cut(address, "@")
			if !ok || !strings.EqualFold(domain, cfg.VirtualDomain) {
				return "", false, nil
			}
			local = strings.ToLower(local)
			if roles[local] {
				return fw.OperatorAddress, fw.OperatorAddress != "", nil
			}
			if _, _, err := forward.ParseAddress(address); err != nil {
				return "", false, nil
			}
			return dir.Lookup(ctx, local)
		}, log.With("sub", "socketmap"))
		ln, err := net.Listen("tcp", fw.SocketmapListen)
		if err != nil {
			return fmt.Errorf("forward.socketmap_listen: %w", err)
		}
		s.loops = append(s.loops, func(ctx context.Context) error {
			err := sm.Serve(ctx, ln)
			if ctx.Err() != nil {
				return nil
			}
			return err
		})
	}
	return nil
}

// devCertificate is the STARTTLS certificate of serve --dev.
func devCertificate(host string) (tls.Certificate, error) {
	keyPEM, certPEM, _, err := keys.Generate(host, 2048, time.Now())
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func cmdMailq(args []string, e env) error {
	fs := flag.NewFlagSet("mailq", flag.ContinueOnError)
	var d dataFlags
	d.register(fs)
	pos, err := parseFlags(fs, args, e)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("mailq takes no arguments")
	}
	cfg, err := loadConfig(d, e)
	if err != nil {
		return err
	}
	items, err := queue.ReadDir(queueDir(cfg))
	if err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintln(e.stdout, "mail queue is empty")
		return nil
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSIZE\tQUEUED\tFROM\tTO\tSTATUS\tATTEMPTS\tNEXT\tLAST ERROR")
	for _, it := range items {
		for _, r := range it.Recipients {
			next := "-"
			if r.Status == queue.Pending && !r.NextAttempt.IsZero() {
				next = r.NextAttempt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t<%s>\t<%s>\t%s\t%d\t%s\t%s\n", it.ID, it.Size, it.Created.UTC().Format(time.RFC3339),
				it.From, r.Address, r.Status, r.Attempts, next, dash(r.LastError))
		}
	}
	fmt.Fprintf(w, "%d message(s)\n", len(items))
	return w.Flush()
}

// dkimRecord is the DNS TXT record publishing our DKIM key.
func dkimRecord(selector, domain string, kp keys.KeyPair) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&kp.Key.PublicKey)
	if err != nil {
		return "", err
	}
	// A TXT string holds at most 255 bytes (RFC 1035 3.3.14): split the
	// value into several quoted strings, which DNS joins again.
	val := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(val) > 250 {
		parts = append(parts, `"`+val[:250]+`"`)
		val = val[250:]
	}
	parts = append(parts, `"`+val+`"`)
	return fmt.Sprintf("%s._domainkey.%s. IN TXT ( %s )", selector, domain, strings.Join(parts, " ")), nil
}
