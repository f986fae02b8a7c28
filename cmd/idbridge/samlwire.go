package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/idbridge/idbridge/internal/account"
	"github.com/idbridge/idbridge/internal/config"
	"github.com/idbridge/idbridge/internal/keys"
	"github.com/idbridge/idbridge/internal/saml"
	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/web"
)

// samlSessions adapts the web sessions and the store to what the SAML IdP asks.
type samlSessions struct {
	web *web.Server
	st  store.Store
	acc *account.Service
}

func (s samlSessions) Current(r *http.Request) (saml.Session, bool) {
	sess, a, ok := s.web.Current(r)
	if !ok || a.Locked || a.Deleted || !a.EmailVerified {
		return saml.Session{}, false
	}
	out := saml.Session{ID: sess.ID, AuthnInstant: sess.AuthnAt, Principal: saml.Principal{
		ID: a.ID, Username: a.Username, Email: a.Email, FirstName: a.FirstName, LastName: a.LastName,
		VirtualAddress: s.acc.VirtualAddress(a),
		LoadGroups:     func(ctx context.Context) ([]string, error) { return s.acc.Groups(ctx, a.ID) },
	}}
	for _, q := range sess.Participants {
		if q.Protocol == "saml" {
			out.Participants = append(out.Participants, saml.Participant{SP: q.Client, NameID: q.NameID,
				NameIDFormat: q.NameIDFormat, SessionIndex: q.SessionIndex})
		}
	}
	return out, true
}

func (s samlSessions) LoginURL(continueURL string, force bool) string {
	return s.web.LoginURL(continueURL, force)
}

func (s samlSessions) RecordParticipant(ctx context.Context, sessionID string, p saml.Participant) error {
	return s.st.UpdateSession(ctx, sessionID, func(sess *store.Session) error {
		for i, q := range sess.Participants {
			if q.Protocol == "saml" && q.Client == p.SP {
				sess.Participants[i].NameID, sess.Participants[i].NameIDFormat, sess.Participants[i].SessionIndex = p.NameID, p.NameIDFormat, p.SessionIndex
				return nil
			}
		}
		sess.Participants = append(sess.Participants, store.Participant{Protocol: "saml", Client: p.SP,
			NameID: p.NameID, NameIDFormat: p.NameIDFormat, SessionIndex: p.SessionIndex})
		return nil
	})
}

func (s samlSessions) Participants(ctx context.Context, sessionID string) ([]saml.Participant, error) {
	sess, err := s.st.GetSession(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []saml.Participant
	for _, q := range sess.Participants {
		if q.Protocol == "saml" {
			out = append(out, saml.Participant{SP: q.Client, NameID: q.NameID, NameIDFormat: q.NameIDFormat, SessionIndex: q.SessionIndex})
		}
	}
	return out, nil
}

func (s samlSessions) End(ctx context.Context, sessionID string) error {
	err := s.st.DeleteSession(ctx, sessionID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// pendingStore keeps SAML requests across the login in the store, so that any
// node can continue them.
type pendingStore struct{ st store.Store }

func (p pendingStore) Put(ctx context.Context, key string, value []byte, expires time.Time) error {
	return p.st.PutEphemeral(ctx, key, value, expires)
}

func (p pendingStore) Take(ctx context.Context, key string) ([]byte, error) {
	return p.st.TakeEphemeral(ctx, key, time.Now())
}

// samlKeys gives the IdP the store's SAML keys.
type samlKeys struct{ m *keys.Manager }

func (k samlKeys) Active(ctx context.Context) (saml.KeyPair, error) {
	kp, err := k.m.Active(ctx)
	if err != nil {
		return saml.KeyPair{}, err
	}
	return saml.KeyPair{Key: kp.Key, Cert: kp.Cert}, nil
}

func (k samlKeys) Published(ctx context.Context) ([]*x509.Certificate, error) {
	return k.m.Published(ctx)
}

func serviceProviders(cfg *config.Config) ([]saml.ServiceProvider, error) {
	var sps []saml.ServiceProvider
	var errs []error
	for i, c := range cfg.SAML.ServiceProviders {
		sp, err := saml.FromConfig(saml.Config{Name: c.Name, EntityID: c.EntityID, ACSURL: c.ACSURL, SLOURL: c.SLOURL,
			CertificateFile: c.CertificateFile, MetadataFile: c.MetadataFile, NameID: c.NameID, Attributes: c.Attributes,
			Sign: c.Sign, DefaultRelayState: c.DefaultRelayState})
		if err != nil {
			errs = append(errs, fmt.Errorf("saml.service_providers[%d]: %w", i, err))
			continue
		}
		sps = append(sps, sp)
	}
	return sps, errors.Join(errs...)
}

// buildSAML mounts the SAML identity provider on the web server.
func (a *app) buildSAML(ctx context.Context, s *servers, p *portal) error {
	cfg := a.cfg
	if cfg.SAML.KeyFile != "" {
		keyPEM, err := readFile(cfg.SAML.KeyFile)
		if err != nil {
			return fmt.Errorf("saml.key_file: %w", err)
		}
		certPEM, err := readFile(cfg.SAML.CertFile)
		if err != nil {
			return fmt.Errorf("saml.cert_file: %w", err)
		}
		if _, err := a.samlKeys.Import(ctx, keyPEM, certPEM); err != nil {
			return fmt.Errorf("saml.key_file: %w", err)
		}
	}
	if err := a.samlKeys.Ensure(ctx); err != nil {
		return fmt.Errorf("saml key: %w", err)
	}
	sps, err := serviceProviders(cfg)
	if err != nil {
		return err
	}
	reg, err := saml.NewRegistry(sps...)
	if err != nil {
		return fmt.Errorf("saml.service_providers: %w", err)
	}
	secret, err := a.secret(ctx, "saml-pairwise-secret", 32)
	if err != nil {
		return fmt.Errorf("saml secret: %w", err)
	}
	sessions := samlSessions{web: s.web, st: a.st, acc: a.accounts}
	idp, err := saml.New(saml.Options{
		BaseURL:         cfg.BaseURL,
		Registry:        reg,
		Sessions:        sessions,
		Pending:         pendingStore{a.st},
		Keys:            samlKeys{a.samlKeys},
		Secret:          secret,
		Logger:          a.log.With("part", "saml"),
		SessionLifetime: cfg.Sessions.AbsoluteLifetime.Duration(),
		ErrorPage:       s.web.RenderError,
		Issued: func(r *http.Request, sp string, p saml.Principal) {
			a.met.SSO.WithLabelValues("saml", sp, "issued").Inc()
			if err := a.st.AddAudit(r.Context(), store.AuditEvent{Time: time.Now().UTC(), Type: "sso.saml",
				AccountID: p.ID, Username: p.Username, IP: s.web.ClientIP(r).String(), Detail: sp}); err != nil {
				a.log.Error("audit", "err", err)
			}
		},
	})
	if err != nil {
		return err
	}
	h := idp.Handler()
	s.web.Handle("GET /saml/metadata", h)
	s.web.HandleCrossSite("/saml/sso", h)
	s.web.HandleCrossSite("/saml/slo", h)
	s.web.Handle("GET /saml/launch/{name}", h)
	p.sources = append(p.sources, func(r *http.Request, acc store.Account) []web.PortalLink {
		var out []web.PortalLink
		pr := saml.Principal{ID: acc.ID, Username: acc.Username, Email: acc.Email, VirtualAddress: a.accounts.VirtualAddress(acc)}
		for _, l := range idp.Portal(pr) {
			out = append(out, web.PortalLink{Name: l.Name, URL: l.URL})
		}
		return out
	})
	s.web.OnLogout(func(ctx context.Context, sessionID, returnTo string) (string, error) {
		return idp.LogoutParticipants(ctx, sessionID, returnTo)
	})
	return nil
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
