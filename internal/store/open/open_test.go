package open

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/idbridge/idbridge/internal/store/postgres"
	"github.com/idbridge/idbridge/internal/store/sqlite"
)

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	s, err := Open(t.Context(), "sqlite:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.(*sqlite.Store); !ok {
		t.Errorf("Open(sqlite:) = %T", s)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestOpenPostgres(t *testing.T) {
	dsn := os.Getenv("IDBRIDGE_TEST_POSTGRES")
	if dsn == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("IDBRIDGE_TEST_POSTGRES is unset under CI")
		}
		t.Skip("IDBRIDGE_TEST_POSTGRES is unset")
	}
	// The conformance suite runs in store/postgres; here only the dispatch,
	// on a schema of its own so that nothing is left in the test database.
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_open_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") //nolint:errcheck
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	s, err := Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, ok := s.(*postgres.Store); !ok {
		t.Errorf("Open(postgres://) = %T", s)
	}
}

func TestOpenRefuses(t *testing.T) {
	for dsn, want := range map[string]string{
		"":                  "empty store DSN",
		"sqlite:":           "needs a file path",
		"mysql://u@h/db":    `unknown kind "mysql"`,
		"/var/lib/x.db":     "no kind",
		"sqlite3:/tmp/x.db": `unknown kind "sqlite3"`,
		"sqlite::memory:":   "plain file path",
	} {
		_, err := Open(t.Context(), dsn)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error containing %q", dsn, err, want)
		}
	}
}
