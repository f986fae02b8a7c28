package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/storetest"
)

// testDSN returns the DSN of the test server from IDBRIDGE_TEST_POSTGRES. It
// skips the test when the variable is unset, except under CI, where the
// PostgreSQL run is required.
func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("IDBRIDGE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("IDBRIDGE_TEST_POSTGRES is unset under CI: the PostgreSQL store tests must run there")
		}
		t.Skip("IDBRIDGE_TEST_POSTGRES is unset (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	return dsn
}

// withSearchPath adds search_path=schema to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
}

// freshSchema creates a schema of its own for one test, dropped at cleanup,
// and returns a DSN whose search_path points at it.
func freshSchema(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	ctx := context.Background()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect to drop schema: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

func openFresh(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := freshSchema(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dsn
}

func TestConformance(t *testing.T) {
	testDSN(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openFresh(t)
		return s
	})
}

func TestMigrationFiles(t *testing.T) {
	if _, err := store.LoadMigrations(migrationFS); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentOpen starts several "nodes" on one empty schema at once:
// the advisory lock lets exactly one apply each migration.
func TestConcurrentOpen(t *testing.T) {
	dsn := freshSchema(t)
	const nodes = 6
	var wg sync.WaitGroup
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var n int
	if err := stores[0].pool.QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	ms, _ := store.LoadMigrations(migrationFS)
	if n != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	// Two nodes race to create the same username: one wins.
	var created sync.WaitGroup
	results := make([]error, nodes)
	for i := range nodes {
		created.Go(func() {
			results[i] = stores[i].CreateAccount(t.Context(), store.Account{ID: "id-" + string(rune('a'+i)), Username: "race"})
		})
	}
	created.Wait()
	wins := 0
	for _, err := range results {
		if err == nil {
			wins++
		}
	}
	if wins != 1 {
		t.Errorf("%d nodes created the same username: %v", wins, results)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	s, dsn := openFresh(t)
	if _, err := s.pool.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')"); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), dsn); err == nil {
		s2.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
}
