package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

const accountCols = `id, username, first_name, last_name, email, email_verified, pending_email,
	password_hash, locked, deleted, created_at, updated_at, last_login_at`

func scanAccount(row rowScanner) (store.Account, error) {
	var a store.Account
	var created, updated, login int64
	err := row.Scan(&a.ID, &a.Username, &a.FirstName, &a.LastName, &a.Email, &a.EmailVerified,
		&a.PendingEmail, &a.PasswordHash, &a.Locked, &a.Deleted, &created, &updated, &login)
	a.CreatedAt, a.UpdatedAt, a.LastLoginAt = fromDB(created), fromDB(updated), fromDB(login)
	return a, err
}

// accountErr maps constraint violations of the accounts table to sentinels.
func accountErr(err error) error {
	switch {
	case isUnique(err, "accounts.email_key"):
		return store.ErrEmailTaken
	case isUnique(err, "accounts.username", "accounts.id"):
		return store.ErrAlreadyExists
	}
	return err
}

// CreateAccount stores a new account; the username is stored lowercase.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	a.Username = strings.ToLower(a.Username)
	if a.ID == "" || a.Username == "" {
		return errors.New("create account: empty id or username")
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	if a.UpdatedAt.IsZero() {
		a.UpdatedAt = a.CreatedAt
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, username, first_name, last_name, email, email_key,
			email_verified, ever_verified, pending_email, password_hash, locked, deleted, created_at, updated_at, last_login_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Username, a.FirstName, a.LastName, a.Email, strings.ToLower(a.Email),
			a.EmailVerified, a.EmailVerified, a.PendingEmail, a.PasswordHash, a.Locked, a.Deleted,
			toDB(a.CreatedAt), toDB(a.UpdatedAt), toDB(a.LastLoginAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.Username, accountErr(err))
	}
	return nil
}

func (s *Store) getAccount(ctx context.Context, q sqlQuerier, what, where string, arg any) (store.Account, error) {
	a, err := scanAccount(q.QueryRowContext(ctx, "SELECT "+accountCols+" FROM accounts WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Account{}, fmt.Errorf("get account %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("get account %s: %w", what, err)
	}
	return a, nil
}

// sqlQuerier is *sql.DB or *sql.Tx.
type sqlQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// GetAccount returns the account (possibly a tombstone) with that id.
func (s *Store) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return s.getAccount(ctx, s.r, quote(id), "id = ?", id)
}

// GetAccountByUsername returns the account (possibly a tombstone) with that
// username, compared case-insensitively.
func (s *Store) GetAccountByUsername(ctx context.Context, username string) (store.Account, error) {
	return s.getAccount(ctx, s.r, quote(username), "username = ?", strings.ToLower(username))
}

// GetAccountByEmail returns the account whose verified email is email,
// compared case-insensitively.
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (store.Account, error) {
	if email == "" {
		return store.Account{}, fmt.Errorf("get account by empty email: %w", store.ErrNotFound)
	}
	return s.getAccount(ctx, s.r, "by email "+quote(email), "email_key = ? AND email_verified = 1", strings.ToLower(email))
}

// UpdateAccount reads, changes and writes the account in one transaction. fn
// sets UpdatedAt itself (the store has no clock of its own here); fn's error
// is returned as it is.
func (s *Store) UpdateAccount(ctx context.Context, id string, fn func(*store.Account) error) error {
	var fnErr error
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := s.getAccount(ctx, tx, quote(id), "id = ?", id)
		if err != nil {
			return err
		}
		a := old
		if err := fn(&a); err != nil {
			fnErr = err
			return err
		}
		a.ID, a.Username, a.CreatedAt = old.ID, old.Username, old.CreatedAt
		_, err = tx.ExecContext(ctx, `UPDATE accounts SET first_name = ?, last_name = ?, email = ?, email_key = ?,
			email_verified = ?, ever_verified = (ever_verified OR ?), pending_email = ?, password_hash = ?,
			locked = ?, deleted = ?, updated_at = ?, last_login_at = ? WHERE id = ?`,
			a.FirstName, a.LastName, a.Email, strings.ToLower(a.Email), a.EmailVerified, a.EmailVerified,
			a.PendingEmail, a.PasswordHash, a.Locked, a.Deleted, toDB(a.UpdatedAt), toDB(a.LastLoginAt), id)
		return accountErr(err)
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("update account %q: %w", id, err)
	}
	return nil
}

// DeleteAccount makes the account a tombstone: names, emails, password and
// lock are cleared, groups, sessions and tokens removed; id and username stay.
func (s *Store) DeleteAccount(ctx context.Context, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET first_name = '', last_name = '', email = '', email_key = '',
			email_verified = 0, pending_email = '', password_hash = '', locked = 0, deleted = 1, updated_at = ?
			WHERE id = ?`, time.Now().UnixNano(), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		for _, table := range []string{"account_groups", "sessions", "tokens"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE account_id = ?", id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete account %q: %w", id, err)
	}
	return nil
}

// PurgeUnverified removes accounts (not tombstones) whose email was never
// verified and that were created before cutoff, with their groups, sessions
// and tokens.
func (s *Store) PurgeUnverified(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM accounts
			WHERE ever_verified = 0 AND email_verified = 0 AND deleted = 0 AND created_at < ?`, toDB(cutoff))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("purge unverified accounts: %w", err)
	}
	return int(n), nil
}

// ListAccounts returns the accounts matching f, ordered by username.
func (s *Store) ListAccounts(ctx context.Context, f store.AccountFilter) ([]store.Account, error) {
	var where []string
	var args []any
	if !f.IncludeDeleted {
		where = append(where, "deleted = 0")
	}
	if f.Query != "" {
		q := strings.ToLower(f.Query)
		where = append(where, `(instr(username, ?) > 0 OR instr(email_key, ?) > 0
			OR instr(`+lowerFunc+`(first_name), ?) > 0 OR instr(`+lowerFunc+`(last_name), ?) > 0)`)
		args = append(args, q, q, q, q)
	}
	if f.Group != "" {
		where = append(where, "id IN (SELECT account_id FROM account_groups WHERE name = ?)")
		args = append(args, f.Group)
	}
	query := "SELECT " + accountCols + " FROM accounts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	limit, offset := limitOffset(f.Limit, f.Offset)
	query += " ORDER BY username LIMIT ? OFFSET ?"
	args = append(args, limit, offset)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	defer rows.Close()
	var out []store.Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// CountAccounts returns the number of accounts that are not tombstones.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM accounts WHERE deleted = 0").Scan(&n); err != nil {
		return 0, fmt.Errorf("count accounts: %w", err)
	}
	return n, nil
}

// AddToGroup adds the account to the group; it is a no-op if it is already a
// member. ErrNotFound if the account does not exist or is a tombstone.
func (s *Store) AddToGroup(ctx context.Context, accountID, group string) error {
	if group == "" {
		return errors.New("add to group: empty group name")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM accounts WHERE id = ? AND deleted = 0", accountID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO account_groups (account_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING", accountID, group)
		return err
	})
	if err != nil {
		return fmt.Errorf("add account %q to group %q: %w", accountID, group, err)
	}
	return nil
}

// RemoveFromGroup removes the account from the group; it is a no-op if it is
// not a member.
func (s *Store) RemoveFromGroup(ctx context.Context, accountID, group string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "DELETE FROM account_groups WHERE account_id = ? AND name = ?", accountID, group)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove account %q from group %q: %w", accountID, group, err)
	}
	return nil
}

// Groups returns the account's groups, sorted.
func (s *Store) Groups(ctx context.Context, accountID string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT name FROM account_groups WHERE account_id = ? ORDER BY name", accountID)
	if err != nil {
		return nil, fmt.Errorf("groups of %q: %w", accountID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return nil, fmt.Errorf("groups of %q: %w", accountID, err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groups of %q: %w", accountID, err)
	}
	return out, nil
}

// quote quotes a value for an error message.
func quote(s string) string { return fmt.Sprintf("%q", s) }
