package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/storetest"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idbridge.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openTemp(t)
		return s
	})
}

func TestMigrationFiles(t *testing.T) {
	if _, err := store.LoadMigrations(migrationFS); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	now := time.Now().UTC()
	if err := s.CreateAccount(ctx, store.Account{ID: "id-1", Username: "alice", Email: "a@example.org",
		EmailVerified: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddToGroup(ctx, "id-1", "admins"); err != nil {
		t.Fatal(err)
	}
	secret, err := s.GetOrCreateSecret(ctx, "cookie", func() ([]byte, error) { return []byte("s3cret"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Opening again applies no migration twice and finds everything.
	for range 2 {
		s2, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s2.GetAccountByEmail(ctx, "A@example.org")
		if err != nil || a.Username != "alice" || !a.CreatedAt.Equal(now) {
			t.Fatalf("after reopen: %+v, %v", a, err)
		}
		if g, _ := s2.Groups(ctx, "id-1"); len(g) != 1 || g[0] != "admins" {
			t.Errorf("groups after reopen: %v", g)
		}
		v, err := s2.GetOrCreateSecret(ctx, "cookie", func() ([]byte, error) { return []byte("other"), nil })
		if err != nil || string(v) != string(secret) {
			t.Errorf("secret after reopen: %q, %v", v, err)
		}
		var mode string
		if err := s2.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q, %v", mode, err)
		}
		var fk int
		if err := s2.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Errorf("foreign_keys = %d, %v", fk, err)
		}
		s2.Close()
	}
}

// TestTwoHandles opens the same file twice, as the CLI does beside a running
// server, and checks that writes from both go through.
func TestTwoHandles(t *testing.T) {
	ctx := t.Context()
	a, path := openTemp(t)
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	errc := make(chan error, 2)
	for _, s := range []*Store{a, b} {
		go func() {
			var err error
			for range 50 {
				if _, err = s.Hit(ctx, "k", time.Now(), time.Hour); err != nil {
					break
				}
			}
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	c, err := a.GetCounter(ctx, "k")
	if err != nil || c.Count != 100 {
		t.Fatalf("counter = %+v, %v; want 100", c, err)
	}
}

func TestOpenRefusesOddPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, path := openTemp(t)
	if _, err := s.w.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(t.Context(), path); err == nil {
		s2.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
}

func BenchmarkGetAccountByUsername(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	now := time.Now()
	for i := range 1000 {
		if err := s.CreateAccount(ctx, store.Account{ID: "id-" + strconv.Itoa(i), Username: "user" + strconv.Itoa(i),
			Email: "u" + strconv.Itoa(i) + "@example.org", EmailVerified: true, CreatedAt: now, UpdatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.GetAccountByUsername(ctx, "USER"+strconv.Itoa(i%1000)); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkHit(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Hit(ctx, "ip:"+strconv.Itoa(i%50), time.Now(), time.Minute); err != nil && !errors.Is(err, context.Canceled) {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(ctx, filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	if err := st.CreateAccount(ctx, store.Account{ID: "id1", Username: "anna", Email: "anna@example.com", EmailVerified: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "copy.db")
	if err := st.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := st.Backup(ctx, path); err == nil {
		t.Fatal("backup over an existing file succeeded")
	}
	cp, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	a, err := cp.GetAccountByUsername(ctx, "anna")
	if err != nil || a.Email != "anna@example.com" {
		t.Fatalf("backup copy: %+v, %v", a, err)
	}
}
