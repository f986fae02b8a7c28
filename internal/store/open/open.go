// Package open opens the store a DSN names: "sqlite:PATH" for the embedded
// SQLite backend, "postgres://..." or "postgresql://..." for PostgreSQL.
package open

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/idbridge/idbridge/internal/store"
	"github.com/idbridge/idbridge/internal/store/postgres"
	"github.com/idbridge/idbridge/internal/store/sqlite"
)

// Open opens the store named by dsn and applies pending migrations.
//
//	sqlite:/var/lib/idbridge/idbridge.db    SQLite file (created if missing)
//	postgres://user@host:5432/db?sslmode=…  PostgreSQL (also postgresql://)
func Open(ctx context.Context, dsn string) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("open store: sqlite: needs a file path, as in sqlite:/var/lib/idbridge/idbridge.db")
		}
		return sqlite.Open(ctx, path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	case dsn == "":
		return nil, errors.New("open store: empty store DSN: want sqlite:PATH or postgres://…")
	default:
		scheme, _, ok := strings.Cut(dsn, ":")
		if !ok {
			return nil, fmt.Errorf("open store %q: no kind: want sqlite:PATH or postgres://…", dsn)
		}
		return nil, fmt.Errorf("open store: unknown kind %q: want sqlite:PATH or postgres://… (postgresql://…)", scheme)
	}
}
