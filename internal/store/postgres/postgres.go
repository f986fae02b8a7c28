// Package postgres implements store.Store on PostgreSQL through pgx v5, for
// several idbridge nodes sharing one database.
//
// Everything nodes must agree on is decided by the database: uniqueness
// (username, id, verified email, one active key per purpose) by constraints,
// read-modify-write (UpdateAccount, UpdateSession) by SELECT ... FOR UPDATE in
// one transaction, counters, one-time tokens and replay caches by single
// atomic statements (upserts, DELETE ... RETURNING), the mail queue by
// FOR UPDATE SKIP LOCKED leases. Migrations run under an advisory lock so
// that nodes started together apply each one once. Times are timestamptz,
// NULL standing for the zero time; they keep microseconds.
//
// The DSN is a pgx connection string (URL or key=value); a search_path
// parameter selects the schema.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idbridge/idbridge/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the PostgreSQL store. Create it with Open.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// lockMigrations takes the transaction-scoped advisory lock that serializes
// migrations of one schema across nodes.
const lockMigrations = "SELECT pg_advisory_xact_lock(hashtext('idbridge:migrate:' || coalesce(current_schema(), '')))"

// migrate applies pending migrations, each in its own transaction under the
// advisory lock.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := store.LoadMigrations(migrationFS)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockMigrations); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     NOT NULL PRIMARY KEY,
			name       text        NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this idbridge knows (%d)", newest, len(ms))
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, lockMigrations); err != nil {
				return err
			}
			var done bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.Version).Scan(&done); err != nil {
				return err
			}
			if done {
				return nil
			}
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// ts turns a time into a timestamptz argument, the zero time into NULL.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.UTC(), Valid: true}
}

// fromTS turns a scanned timestamptz into a UTC time, NULL into the zero time.
func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// constraint returns the name of the constraint err violates with the given
// SQLSTATE code, or "".
func constraint(err error, code string) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == code {
		if pe.ConstraintName == "" {
			return "?"
		}
		return pe.ConstraintName
	}
	return ""
}

const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// unexpired is the SQL condition for a row whose expires_at (NULL: never) is after $n.
func unexpired(n int) string {
	return fmt.Sprintf("(expires_at IS NULL OR expires_at > $%d)", n)
}

// limit turns 0 (no limit) into NULL, which LIMIT takes as none.
func limit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	v := int64(n)
	return &v
}
