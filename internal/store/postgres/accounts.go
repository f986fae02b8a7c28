package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/idbridge/idbridge/internal/store"
)

const accountCols = `id, username, first_name, last_name, email, email_verified, pending_email,
	password_hash, locked, deleted, created_at, updated_at, last_login_at`

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	var created, updated, login pgtype.Timestamptz
	err := row.Scan(&a.ID, &a.Username, &a.FirstName, &a.LastName, &a.Email, &a.EmailVerified,
		&a.PendingEmail, &a.PasswordHash, &a.Locked, &a.Deleted, &created, &updated, &login)
	a.CreatedAt, a.UpdatedAt, a.LastLoginAt = fromTS(created), fromTS(updated), fromTS(login)
	return a, err
}

// accountErr maps constraint violations of the accounts table to sentinels.
func accountErr(err error) error {
	switch constraint(err, uniqueViolation) {
	case "":
		return err
	case "accounts_verified_email":
		return store.ErrEmailTaken
	default: // accounts_pkey, accounts_username_key
		return store.ErrAlreadyExists
	}
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
	_, err := s.pool.Exec(ctx, `INSERT INTO accounts (id, username, first_name, last_name, email, email_key,
		email_verified, ever_verified, pending_email, password_hash, locked, deleted, created_at, updated_at, last_login_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)`,
		a.ID, a.Username, a.FirstName, a.LastName, a.Email, strings.ToLower(a.Email),
		a.EmailVerified, a.PendingEmail, a.PasswordHash, a.Locked, a.Deleted,
		ts(a.CreatedAt), ts(a.UpdatedAt), ts(a.LastLoginAt))
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.Username, accountErr(err))
	}
	return nil
}

func (s *Store) getAccount(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, what, where string, arg any) (store.Account, error) {
	a, err := scanAccount(q.QueryRow(ctx, "SELECT "+accountCols+" FROM accounts WHERE "+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Account{}, fmt.Errorf("get account %s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return store.Account{}, fmt.Errorf("get account %s: %w", what, err)
	}
	return a, nil
}

// GetAccount returns the account (possibly a tombstone) with that id.
func (s *Store) GetAccount(ctx context.Context, id string) (store.Account, error) {
	return s.getAccount(ctx, s.pool, quote(id), "id = $1", id)
}

// GetAccountByUsername returns the account (possibly a tombstone) with that
// username, compared case-insensitively.
func (s *Store) GetAccountByUsername(ctx context.Context, username string) (store.Account, error) {
	return s.getAccount(ctx, s.pool, quote(username), "username = $1", strings.ToLower(username))
}

// GetAccountByEmail returns the account whose verified email is email,
// compared case-insensitively.
func (s *Store) GetAccountByEmail(ctx context.Context, email string) (store.Account, error) {
	if email == "" {
		return store.Account{}, fmt.Errorf("get account by empty email: %w", store.ErrNotFound)
	}
	return s.getAccount(ctx, s.pool, "by email "+quote(email), "email_key = $1 AND email_verified", strings.ToLower(email))
}

// UpdateAccount reads (FOR UPDATE), changes and writes the account in one
// transaction. fn sets UpdatedAt itself (the store has no clock of its own
// here); fn's error is returned as it is.
func (s *Store) UpdateAccount(ctx context.Context, id string, fn func(*store.Account) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, err := s.getAccount(ctx, tx, quote(id), "id = $1 FOR UPDATE", id)
		if err != nil {
			return err
		}
		a := old
		if err := fn(&a); err != nil {
			fnErr = err
			return err
		}
		a.ID, a.Username, a.CreatedAt = old.ID, old.Username, old.CreatedAt
		_, err = tx.Exec(ctx, `UPDATE accounts SET first_name = $1, last_name = $2, email = $3, email_key = $4,
			email_verified = $5, ever_verified = (ever_verified OR $5), pending_email = $6, password_hash = $7,
			locked = $8, deleted = $9, updated_at = $10, last_login_at = $11 WHERE id = $12`,
			a.FirstName, a.LastName, a.Email, strings.ToLower(a.Email), a.EmailVerified,
			a.PendingEmail, a.PasswordHash, a.Locked, a.Deleted, ts(a.UpdatedAt), ts(a.LastLoginAt), id)
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE accounts SET first_name = '', last_name = '', email = '', email_key = '',
			email_verified = false, pending_email = '', password_hash = '', locked = false, deleted = true,
			updated_at = $1 WHERE id = $2`, ts(time.Now()), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		for _, table := range []string{"account_groups", "sessions", "tokens"} {
			if _, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE account_id = $1", id); err != nil {
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
	tag, err := s.pool.Exec(ctx, `DELETE FROM accounts
		WHERE NOT ever_verified AND NOT email_verified AND NOT deleted AND created_at < $1`, ts(cutoff))
	if err != nil {
		return 0, fmt.Errorf("purge unverified accounts: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListAccounts returns the accounts matching f, ordered by username.
func (s *Store) ListAccounts(ctx context.Context, f store.AccountFilter) ([]store.Account, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if !f.IncludeDeleted {
		where = append(where, "NOT deleted")
	}
	if f.Query != "" {
		q := arg(strings.ToLower(f.Query))
		where = append(where, fmt.Sprintf(`(strpos(username, %[1]s) > 0 OR strpos(email_key, %[1]s) > 0
			OR strpos(lower(first_name), %[1]s) > 0 OR strpos(lower(last_name), %[1]s) > 0)`, q))
	}
	if f.Group != "" {
		where = append(where, "id IN (SELECT account_id FROM account_groups WHERE name = "+arg(f.Group)+")")
	}
	query := "SELECT " + accountCols + " FROM accounts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY username COLLATE \"C\" LIMIT " + arg(limit(f.Limit)) + " OFFSET " + arg(max(f.Offset, 0))
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return out, nil
}

// CountAccounts returns the number of accounts that are not tombstones.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM accounts WHERE NOT deleted").Scan(&n); err != nil {
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
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM accounts WHERE id = $1 AND NOT deleted FOR SHARE", accountID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO account_groups (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", accountID, group)
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
	if _, err := s.pool.Exec(ctx, "DELETE FROM account_groups WHERE account_id = $1 AND name = $2", accountID, group); err != nil {
		return fmt.Errorf("remove account %q from group %q: %w", accountID, group, err)
	}
	return nil
}

// Groups returns the account's groups, sorted.
func (s *Store) Groups(ctx context.Context, accountID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT name FROM account_groups WHERE account_id = $1 ORDER BY name COLLATE \"C\"", accountID)
	if err != nil {
		return nil, fmt.Errorf("groups of %q: %w", accountID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("groups of %q: %w", accountID, err)
	}
	return out, nil
}

// quote quotes a value for an error message.
func quote(s string) string { return fmt.Sprintf("%q", s) }
