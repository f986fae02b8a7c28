// Package sqlite implements store.Store on an embedded SQLite database through
// modernc.org/sqlite (pure Go, so idbridge builds with CGO_ENABLED=0).
//
// The database runs in WAL mode with foreign keys on and a busy timeout. Every
// write goes through one connection in BEGIN IMMEDIATE transactions, so
// read-modify-write operations never deadlock on a lock upgrade and writers in
// other processes (the idbridge CLI beside a running server) wait their turn;
// plain reads use a separate pool of query-only connections that WAL lets run
// beside the writer. Uniqueness (username, id, verified email, one active key
// per purpose) is enforced by the schema. Times are stored as INTEGER unix
// nanoseconds in UTC, 0 standing for the zero time.
//
// Callbacks given to UpdateAccount and UpdateSession run inside the write
// transaction: they must not call the store's writing methods.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"

	"github.com/idbridge/idbridge/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the SQLite store. Create it with Open.
type Store struct {
	w *sql.DB   // one connection: every write, in IMMEDIATE transactions
	r *readPool // query-only connections for plain reads
}

// readPool runs the plain reads with prepared statements kept for reuse:
// the queries are a fixed set, and parsing each again on every call cost
// more than running it (sessions and accounts are read on every request).
type readPool struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func (p *readPool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts[query]; ok {
		return st, nil
	}
	if len(p.stmts) >= maxStmts {
		return nil, errTooManyStmts
	}
	st, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.stmts[query] = st
	return st, nil
}

// maxStmts bounds the cache: the store's queries are a few dozen shapes
// (filters make a few variants of the list queries); anything past it runs
// unprepared.
const maxStmts = 256

var errTooManyStmts = errors.New("statement cache full")

// QueryRowContext is sql.DB's, on a prepared statement.
func (p *readPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.QueryRowContext(ctx, query, args...) // reports a prepare error itself
	}
	return st.QueryRowContext(ctx, args...)
}

// QueryContext is sql.DB's, on a prepared statement.
func (p *readPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.db.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// PingContext is sql.DB's.
func (p *readPool) PingContext(ctx context.Context) error { return p.db.PingContext(ctx) }

// Close closes the statements and the pool.
func (p *readPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, st := range p.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(append(errs, p.db.Close())...)
}

var _ store.Store = (*Store)(nil)

// lowerFunc is the SQL function the store uses for case-insensitive search:
// SQLite's own lower() folds ASCII only.
const lowerFunc = "idb_lower"

func init() {
	err := sqlite.RegisterDeterministicScalarFunction(lowerFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		switch v := args[0].(type) {
		case string:
			return strings.ToLower(v), nil
		case []byte:
			return strings.ToLower(string(v)), nil
		default:
			return v, nil
		}
	})
	if err != nil {
		panic("sqlite: register " + lowerFunc + ": " + err.Error())
	}
}

// Open opens (creating it if needed) the SQLite database file at path and
// applies pending migrations. path is a plain file name; ":memory:", "file:"
// URIs and names holding '?' or '#' are refused.
func Open(ctx context.Context, path string) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("open sqlite: empty path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("open sqlite %q: need a plain file path", path)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("open sqlite %q: path must not contain '?' or '#'", path)
	}
	const common = "_busy_timeout=10000&_foreign_keys=1"
	w, err := sql.Open("sqlite", path+"?"+common+"&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	return &Store{w: w, r: &readPool{db: r, stmts: map[string]*sql.Stmt{}}}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// write runs fn in an IMMEDIATE transaction on the writer connection.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// migrate applies pending migrations, each in its own IMMEDIATE transaction,
// so that two processes opening the same file apply each one once.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := store.LoadMigrations(migrationFS)
	if err != nil {
		return err
	}
	// In an IMMEDIATE transaction like the migrations: several processes
	// opening a new file at once (parallel CLI commands) then wait on the
	// busy timeout instead of failing with SQLITE_BUSY.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		tx.Rollback()
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if newest > len(ms) {
		return fmt.Errorf("database schema version %d is newer than this idbridge knows (%d)", newest, len(ms))
	}
	for _, m := range ms {
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback() //nolint:errcheck // a no-op after Commit
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.Version, m.Name, time.Now().UnixNano()); err != nil {
				return err
			}
			return tx.Commit()
		}()
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
	}
	return nil
}

// toDB turns a time into unix nanoseconds, the zero time into 0.
func toDB(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromDB turns unix nanoseconds back into a UTC time, 0 into the zero time.
func fromDB(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// isUnique reports whether err is a UNIQUE or PRIMARY KEY violation naming
// one of the given table.column targets.
func isUnique(err error, targets ...string) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	if !strings.Contains(msg, "UNIQUE constraint failed") {
		return false
	}
	for _, t := range targets {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return len(targets) == 0
}

func isForeignKey(err error) bool {
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// unexpired is the SQL condition for a row whose expires_at (0: never) is after ?.
const unexpired = "(expires_at = 0 OR expires_at > ?)"

// expired is the SQL condition for a row whose expires_at is set and at or before ?.
const expired = "(expires_at <> 0 AND expires_at <= ?)"

func limitOffset(limit, offset int) (int, int) {
	if limit <= 0 {
		limit = -1
	}
	return limit, max(offset, 0)
}

// Backup writes a consistent copy of the database to path (which must not
// exist) while the store stays in use: SQLite's VACUUM INTO, a transaction
// of its own, so the copy is consistent. Writes wait for it (a store of
// 12,000 accounts copies in well under a second).
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup: %s already exists", path)
	}
	if _, err := s.w.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}
