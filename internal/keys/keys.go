// Package keys manages idbridge's signing keys: RSA keys with self-signed
// X.509 certificates, kept in the store so that every node signs and verifies
// alike, with a rollover in three steps (add → activate → retire):
//
//   - add publishes a new key ("next") beside the active one, so service
//     providers that read metadata can learn it before it signs;
//   - activate makes it sign; the previously active key becomes "retired" and
//     stays published so that responses already in flight still verify;
//   - retire removes a key that no longer signs from the store and metadata.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// KeyPair is a usable signing key.
type KeyPair struct {
	ID   string
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// Manager reads and rotates the keys of one purpose ("saml", "oidc").
type Manager struct {
	st      store.Store
	purpose string
	subject string
	bits    int
	ttl     time.Duration // how long a read is cached: a rollover reaches every node within it
	now     func() time.Time

	mu      sync.Mutex
	cached  []KeyPair
	states  map[string]string
	fetched time.Time
}

// New returns a manager for purpose; subject is the certificate's common name.
func New(st store.Store, purpose, subject string) *Manager {
	return &Manager{st: st, purpose: purpose, subject: subject, bits: 2048, ttl: 10 * time.Second, now: time.Now}
}

// Ensure creates and activates a first key when the purpose has none.
// Concurrent nodes may race here; the loser's key is removed again.
func (m *Manager) Ensure(ctx context.Context) error {
	ks, err := m.st.ListKeys(ctx, m.purpose)
	if err != nil {
		return fmt.Errorf("list %s keys: %w", m.purpose, err)
	}
	for _, k := range ks {
		if k.State == store.KeyActive {
			return nil
		}
	}
	k, err := m.Add(ctx)
	if err != nil {
		return err
	}
	if err := m.Activate(ctx, k.ID); err != nil {
		return err
	}
	return nil
}

// Import stores a key and certificate given in PEM (from files named in the
// config) as the active key, unless a key with the same certificate exists.
func (m *Manager) Import(ctx context.Context, keyPEM, certPEM []byte) (string, error) {
	kp, err := parse(keyPEM, certPEM)
	if err != nil {
		return "", err
	}
	id := fingerprint(kp.Cert)
	ks, err := m.st.ListKeys(ctx, m.purpose)
	if err != nil {
		return "", err
	}
	for _, k := range ks {
		if k.ID == id {
			return id, nil
		}
	}
	if err := m.st.AddKey(ctx, store.SigningKey{ID: id, Purpose: m.purpose, State: store.KeyNext,
		KeyPEM: keyPEM, CertPEM: certPEM, CreatedAt: m.now().UTC()}); err != nil {
		return "", fmt.Errorf("store imported key: %w", err)
	}
	return id, m.Activate(ctx, id)
}

// Add generates a new key in state "next": published, not yet signing.
func (m *Manager) Add(ctx context.Context) (store.SigningKey, error) {
	keyPEM, certPEM, id, err := Generate(m.subject, m.bits, m.now())
	if err != nil {
		return store.SigningKey{}, err
	}
	k := store.SigningKey{ID: id, Purpose: m.purpose, State: store.KeyNext, KeyPEM: keyPEM, CertPEM: certPEM, CreatedAt: m.now().UTC()}
	if err := m.st.AddKey(ctx, k); err != nil {
		return store.SigningKey{}, fmt.Errorf("store new %s key: %w", m.purpose, err)
	}
	m.invalidate()
	return k, nil
}

// Activate makes key id the signing key; the previous one is retired.
func (m *Manager) Activate(ctx context.Context, id string) error {
	k, err := m.find(ctx, id)
	if err != nil {
		return err
	}
	if k.State == store.KeyActive {
		return nil
	}
	if err := m.st.SetKeyState(ctx, id, store.KeyActive); err != nil {
		return fmt.Errorf("activate key %s: %w", id, err)
	}
	m.invalidate()
	return nil
}

// Retire removes a key that does not sign. The active key cannot be retired:
// activate its successor first.
func (m *Manager) Retire(ctx context.Context, id string) error {
	k, err := m.find(ctx, id)
	if err != nil {
		return err
	}
	if k.State == store.KeyActive {
		return fmt.Errorf("key %s is the active %s key: activate another key first", id, m.purpose)
	}
	if err := m.st.DeleteKey(ctx, id); err != nil {
		return fmt.Errorf("retire key %s: %w", id, err)
	}
	m.invalidate()
	return nil
}

// Pair returns key id, usable, whatever its state.
func (m *Manager) Pair(ctx context.Context, id string) (KeyPair, error) {
	k, err := m.find(ctx, id)
	if err != nil {
		return KeyPair{}, err
	}
	kp, err := parse(k.KeyPEM, k.CertPEM)
	if err != nil {
		return KeyPair{}, fmt.Errorf("%s key %s: %w", m.purpose, id, err)
	}
	kp.ID = id
	return kp, nil
}

// List returns the stored keys, oldest first.
func (m *Manager) List(ctx context.Context) ([]store.SigningKey, error) {
	return m.st.ListKeys(ctx, m.purpose)
}

// Active returns the key that signs.
func (m *Manager) Active(ctx context.Context) (KeyPair, error) {
	kps, states, err := m.load(ctx)
	if err != nil {
		return KeyPair{}, err
	}
	for _, kp := range kps {
		if states[kp.ID] == store.KeyActive {
			return kp, nil
		}
	}
	return KeyPair{}, fmt.Errorf("no active %s key: run `idbridge keys add` and `keys activate`", m.purpose)
}

// Published returns the certificates to publish in metadata: every stored key
// (next, active and retired), oldest first.
func (m *Manager) Published(ctx context.Context) ([]*x509.Certificate, error) {
	kps, _, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, 0, len(kps))
	for _, kp := range kps {
		certs = append(certs, kp.Cert)
	}
	return certs, nil
}

func (m *Manager) invalidate() {
	m.mu.Lock()
	m.fetched = time.Time{}
	m.mu.Unlock()
}

func (m *Manager) load(ctx context.Context) ([]KeyPair, map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.fetched.IsZero() && m.now().Sub(m.fetched) < m.ttl {
		return m.cached, m.states, nil
	}
	ks, err := m.st.ListKeys(ctx, m.purpose)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s keys: %w", m.purpose, err)
	}
	kps := make([]KeyPair, 0, len(ks))
	states := make(map[string]string, len(ks))
	for _, k := range ks {
		kp, err := parse(k.KeyPEM, k.CertPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("%s key %s: %w", m.purpose, k.ID, err)
		}
		kp.ID = k.ID
		kps = append(kps, kp)
		states[k.ID] = k.State
	}
	m.cached, m.states, m.fetched = kps, states, m.now()
	return kps, states, nil
}

func (m *Manager) find(ctx context.Context, id string) (store.SigningKey, error) {
	ks, err := m.st.ListKeys(ctx, m.purpose)
	if err != nil {
		return store.SigningKey{}, err
	}
	for _, k := range ks {
		if k.ID == id {
			return k, nil
		}
	}
	return store.SigningKey{}, fmt.Errorf("no %s key %q: %w", m.purpose, id, store.ErrNotFound)
}

// Generate makes an RSA key and a self-signed certificate valid for ten years.
// The id is the hex SHA-256 fingerprint of the certificate, shortened.
func Generate(subject string, bits int, now time.Time) (keyPEM, certPEM []byte, id string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, nil, "", fmt.Errorf("generate rsa key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.AddDate(10, 0, 0).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, "", fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, "", err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return keyPEM, certPEM, fingerprint(cert), nil
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:8])
}

func parse(keyPEM, certPEM []byte) (KeyPair, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return KeyPair{}, errors.New("private key: no PEM block")
	}
	var key *rsa.PrivateKey
	switch kb.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
		if err != nil {
			return KeyPair{}, fmt.Errorf("private key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return KeyPair{}, fmt.Errorf("private key: %w", err)
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return KeyPair{}, errors.New("private key: not an RSA key")
		}
		key = rk
	default:
		return KeyPair{}, fmt.Errorf("private key: unexpected PEM block %q", kb.Type)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return KeyPair{}, errors.New("certificate: no CERTIFICATE PEM block")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return KeyPair{}, fmt.Errorf("certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return KeyPair{}, errors.New("certificate does not match the private key")
	}
	return KeyPair{Key: key, Cert: cert}, nil
}
