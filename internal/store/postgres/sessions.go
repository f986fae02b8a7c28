package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/idbridge/idbridge/internal/store"
)

const sessionCols = "id, account_id, created_at, last_seen_at, expires_at, authn_at, ip, user_agent, participants"

func scanSession(row pgx.Row) (store.Session, error) {
	var s store.Session
	var created, seen, expires, authn pgtype.Timestamptz
	var parts []byte
	if err := row.Scan(&s.ID, &s.AccountID, &created, &seen, &expires, &authn, &s.IP, &s.UserAgent, &parts); err != nil {
		return store.Session{}, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.AuthnAt = fromTS(created), fromTS(seen), fromTS(expires), fromTS(authn)
	if err := json.Unmarshal(parts, &s.Participants); err != nil {
		return store.Session{}, fmt.Errorf("session participants: %w", err)
	}
	if len(s.Participants) == 0 {
		s.Participants = nil
	}
	return s, nil
}

func participantsJSON(ps []store.Participant) (string, error) {
	if ps == nil {
		ps = []store.Participant{}
	}
	b, err := json.Marshal(ps)
	return string(b), err
}

// CreateSession stores a new session. ErrAlreadyExists if the id is taken,
// ErrNotFound if the account does not exist.
func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	parts, err := participantsJSON(ss.Participants)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	_, err = s.pool.Exec(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
		ss.ID, ss.AccountID, ts(ss.CreatedAt), ts(ss.LastSeenAt), ts(ss.ExpiresAt), ts(ss.AuthnAt), ss.IP, ss.UserAgent, parts)
	switch {
	case constraint(err, uniqueViolation) != "":
		return fmt.Errorf("create session: %w", store.ErrAlreadyExists)
	case constraint(err, foreignKeyViolation) != "":
		return fmt.Errorf("create session: account %q: %w", ss.AccountID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession returns the session with that id, expired or not.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	ss, err := scanSession(s.pool.QueryRow(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Session{}, fmt.Errorf("get session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", err)
	}
	return ss, nil
}

// UpdateSession reads (FOR UPDATE), changes and writes the session in one
// transaction. ID, AccountID and CreatedAt cannot be changed by fn; fn's error
// is returned as it is.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(*store.Session) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, err := scanSession(tx.QueryRow(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = $1 FOR UPDATE", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		ss := old
		if err := fn(&ss); err != nil {
			fnErr = err
			return err
		}
		parts, err := participantsJSON(ss.Participants)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE sessions SET last_seen_at = $1, expires_at = $2, authn_at = $3, ip = $4,
			user_agent = $5, participants = $6::jsonb WHERE id = $7`,
			ts(ss.LastSeenAt), ts(ss.ExpiresAt), ts(ss.AuthnAt), ss.IP, ss.UserAgent, parts, id)
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	return nil
}

// DeleteSession removes the session; ErrNotFound if there is none.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete session: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteAccountSessions removes the account's sessions except keepID.
func (s *Store) DeleteAccountSessions(ctx context.Context, accountID, keepID string) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE account_id = $1 AND id <> $2", accountID, keepID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %q: %w", accountID, err)
	}
	return int(tag.RowsAffected()), nil
}

// ListAccountSessions returns the account's sessions, oldest first.
func (s *Store) ListAccountSessions(ctx context.Context, accountID string) ([]store.Session, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+sessionCols+` FROM sessions WHERE account_id = $1
		ORDER BY created_at, id COLLATE "C"`, accountID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", accountID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteExpiredSessions removes sessions whose ExpiresAt (when set) is at or
// before now, or whose LastSeenAt is before idleCutoff (when set).
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleCutoff time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at < $2", ts(now), ts(idleCutoff))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

const tokenCols = "hash, kind, account_id, email, created_at, expires_at"

func scanToken(row pgx.Row) (store.Token, error) {
	var t store.Token
	var created, expires pgtype.Timestamptz
	err := row.Scan(&t.Hash, &t.Kind, &t.AccountID, &t.Email, &created, &expires)
	t.CreatedAt, t.ExpiresAt = fromTS(created), fromTS(expires)
	return t, err
}

// CreateToken stores a one-time token. ErrAlreadyExists if the hash is taken,
// ErrNotFound if the account does not exist.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO tokens ("+tokenCols+") VALUES ($1, $2, $3, $4, $5, $6)",
		t.Hash, t.Kind, t.AccountID, t.Email, ts(t.CreatedAt), ts(t.ExpiresAt))
	switch {
	case constraint(err, uniqueViolation) != "":
		return fmt.Errorf("create %s token: %w", t.Kind, store.ErrAlreadyExists)
	case constraint(err, foreignKeyViolation) != "":
		return fmt.Errorf("create %s token: account %q: %w", t.Kind, t.AccountID, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create %s token: %w", t.Kind, err)
	}
	return nil
}

// ConsumeToken deletes and returns the token if it has that kind and has not
// expired at now (a zero ExpiresAt never expires), in one statement.
func (s *Store) ConsumeToken(ctx context.Context, hash, kind string, now time.Time) (store.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, "DELETE FROM tokens WHERE hash = $1 AND kind = $2 AND "+unexpired(3)+
		" RETURNING "+tokenCols, hash, kind, ts(now)))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Token{}, fmt.Errorf("consume %s token: %w", kind, store.ErrNotFound)
	}
	if err != nil {
		return store.Token{}, fmt.Errorf("consume %s token: %w", kind, err)
	}
	return t, nil
}

// DeleteAccountTokens removes the account's tokens of that kind ("" for all kinds).
func (s *Store) DeleteAccountTokens(ctx context.Context, accountID, kind string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM tokens WHERE account_id = $1 AND ($2 = '' OR kind = $2)", accountID, kind); err != nil {
		return fmt.Errorf("delete tokens of %q: %w", accountID, err)
	}
	return nil
}

// DeleteExpiredTokens removes tokens expired at now.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM tokens WHERE expires_at <= $1", ts(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
