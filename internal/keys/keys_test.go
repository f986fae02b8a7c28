package keys

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/sqlite"
)

func newManager(t *testing.T) (*Manager, store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := New(st, "saml", "https://id.example.org/saml/metadata")
	m.ttl = 0 // every read goes to the store
	return m, st
}

func states(t *testing.T, m *Manager) map[string]string {
	t.Helper()
	ks, err := m.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range ks {
		out[k.ID] = k.State
	}
	return out
}

// The rollover of PRODUCT.md: add publishes, activate signs (the old key
// stays published), retire drops; the active key cannot be retired.
func TestRollover(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	if _, err := m.Active(ctx); err == nil {
		t.Fatal("an empty store has an active key")
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	first, err := m.Active(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(states(t, m)) != 1 {
		t.Fatalf("Ensure twice made %v", states(t, m))
	}
	if first.Key.N.BitLen() != 2048 || first.Cert.NotAfter.Before(time.Now().AddDate(9, 0, 0)) {
		t.Errorf("key %d bits, cert until %v", first.Key.N.BitLen(), first.Cert.NotAfter)
	}

	next, err := m.Add(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := m.Published(ctx)
	if len(pub) != 2 {
		t.Fatalf("after add: %d published certificates, want 2", len(pub))
	}
	if a, _ := m.Active(ctx); a.ID != first.ID {
		t.Fatal("add changed the signing key")
	}
	if err := m.Activate(ctx, next.ID); err != nil {
		t.Fatal(err)
	}
	if a, _ := m.Active(ctx); a.ID != next.ID {
		t.Fatal("activate did not change the signing key")
	}
	if st := states(t, m); st[first.ID] != store.KeyRetired || st[next.ID] != store.KeyActive {
		t.Fatalf("after activate: %v", st)
	}
	if pub, _ := m.Published(ctx); len(pub) != 2 {
		t.Fatalf("the old key must stay published until retired, got %d", len(pub))
	}
	if err := m.Retire(ctx, next.ID); err == nil {
		t.Fatal("retired the active key")
	}
	if err := m.Retire(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if pub, _ := m.Published(ctx); len(pub) != 1 || !pub[0].Equal(certOf(t, next)) {
		t.Fatalf("after retire: %d published", len(pub))
	}
	if err := m.Activate(ctx, "nope"); err == nil {
		t.Fatal("activated an unknown key")
	}
}

func certOf(t *testing.T, k store.SigningKey) *x509.Certificate {
	kp, err := parse(k.KeyPEM, k.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Cert
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	m, _ := newManager(t)
	keyPEM, certPEM, id, err := Generate("imported", 2048, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Import(ctx, keyPEM, certPEM)
	if err != nil || got != id {
		t.Fatalf("import: %q, %v", got, err)
	}
	if again, err := m.Import(ctx, keyPEM, certPEM); err != nil || again != id || len(states(t, m)) != 1 {
		t.Fatalf("importing twice: %q %v %v", again, err, states(t, m))
	}
	if a, _ := m.Active(ctx); a.ID != id {
		t.Fatal("the imported key does not sign")
	}
	otherKey, _, _, _ := Generate("other", 2048, time.Now())
	if _, err := m.Import(ctx, otherKey, certPEM); err == nil {
		t.Fatal("a certificate that does not match its key was imported")
	}
	if _, err := m.Import(ctx, []byte("junk"), certPEM); err == nil {
		t.Fatal("junk imported")
	}
}

// A second node (its own Manager on the same store) sees an activation once
// its cache expires.
func TestTwoNodes(t *testing.T) {
	ctx := context.Background()
	a, st := newManager(t)
	b := New(st, "saml", "x")
	now := time.Now()
	b.now = func() time.Time { return now }
	if err := a.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	k1, _ := b.Active(ctx)
	next, _ := a.Add(ctx)
	a.Activate(ctx, next.ID)
	if k, _ := b.Active(ctx); k.ID != k1.ID {
		t.Fatal("cache not used within its ttl")
	}
	now = now.Add(11 * time.Second)
	if k, _ := b.Active(ctx); k.ID != next.ID {
		t.Fatalf("node b still signs with %s after the cache expired", k.ID)
	}
}
