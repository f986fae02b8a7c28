package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

const sessionCols = "id, account_id, created_at, last_seen_at, expires_at, authn_at, ip, user_agent, participants"

func scanSession(row rowScanner) (store.Session, error) {
	var s store.Session
	var created, seen, expires, authn int64
	var parts string
	if err := row.Scan(&s.ID, &s.AccountID, &created, &seen, &expires, &authn, &s.IP, &s.UserAgent, &parts); err != nil {
		return store.Session{}, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.AuthnAt = fromDB(created), fromDB(seen), fromDB(expires), fromDB(authn)
	if err := json.Unmarshal([]byte(parts), &s.Participants); err != nil {
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions ("+sessionCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			ss.ID, ss.AccountID, toDB(ss.CreatedAt), toDB(ss.LastSeenAt), toDB(ss.ExpiresAt), toDB(ss.AuthnAt),
			ss.IP, ss.UserAgent, parts)
		switch {
		case isUnique(err, "sessions.id"):
			return store.ErrAlreadyExists
		case isForeignKey(err):
			return fmt.Errorf("account %q: %w", ss.AccountID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession returns the session with that id, expired or not.
func (s *Store) GetSession(ctx context.Context, id string) (store.Session, error) {
	ss, err := scanSession(s.r.QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, fmt.Errorf("get session: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("get session: %w", err)
	}
	return ss, nil
}

// UpdateSession reads, changes and writes the session in one transaction. ID,
// AccountID and CreatedAt cannot be changed by fn; fn's error is returned as
// it is.
func (s *Store) UpdateSession(ctx context.Context, id string, fn func(*store.Session) error) error {
	var fnErr error
	err := s.write(ctx, func(tx *sql.Tx) error {
		old, err := scanSession(tx.QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
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
		_, err = tx.ExecContext(ctx, `UPDATE sessions SET last_seen_at = ?, expires_at = ?, authn_at = ?, ip = ?,
			user_agent = ?, participants = ? WHERE id = ?`,
			toDB(ss.LastSeenAt), toDB(ss.ExpiresAt), toDB(ss.AuthnAt), ss.IP, ss.UserAgent, parts, id)
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
	n, err := s.exec(ctx, "DELETE FROM sessions WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("delete session: %w", store.ErrNotFound)
	}
	return nil
}

// DeleteAccountSessions removes the account's sessions except keepID.
func (s *Store) DeleteAccountSessions(ctx context.Context, accountID, keepID string) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM sessions WHERE account_id = ? AND id <> ?", accountID, keepID)
	if err != nil {
		return 0, fmt.Errorf("delete sessions of %q: %w", accountID, err)
	}
	return n, nil
}

// ListAccountSessions returns the account's sessions, oldest first.
func (s *Store) ListAccountSessions(ctx context.Context, accountID string) ([]store.Session, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE account_id = ? ORDER BY created_at, id", accountID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", accountID, err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions of %q: %w", accountID, err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of %q: %w", accountID, err)
	}
	return out, nil
}

// DeleteExpiredSessions removes sessions whose ExpiresAt (when set) is at or
// before now, or whose LastSeenAt is before idleCutoff (when set).
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleCutoff time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM sessions WHERE "+expired+" OR last_seen_at < ?", toDB(now), toDB(idleCutoff))
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return n, nil
}

// exec runs one statement in a write transaction and returns the rows affected.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

const tokenCols = "hash, kind, account_id, email, created_at, expires_at"

func scanToken(row rowScanner) (store.Token, error) {
	var t store.Token
	var created, expires int64
	err := row.Scan(&t.Hash, &t.Kind, &t.AccountID, &t.Email, &created, &expires)
	t.CreatedAt, t.ExpiresAt = fromDB(created), fromDB(expires)
	return t, err
}

// CreateToken stores a one-time token. ErrAlreadyExists if the hash is taken,
// ErrNotFound if the account does not exist.
func (s *Store) CreateToken(ctx context.Context, t store.Token) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = time.Now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO tokens ("+tokenCols+") VALUES (?, ?, ?, ?, ?, ?)",
			t.Hash, t.Kind, t.AccountID, t.Email, toDB(t.CreatedAt), toDB(t.ExpiresAt))
		switch {
		case isUnique(err, "tokens.hash"):
			return store.ErrAlreadyExists
		case isForeignKey(err):
			return fmt.Errorf("account %q: %w", t.AccountID, store.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s token: %w", t.Kind, err)
	}
	return nil
}

// ConsumeToken deletes and returns the token if it has that kind and has not
// expired at now (a zero ExpiresAt never expires).
func (s *Store) ConsumeToken(ctx context.Context, hash, kind string, now time.Time) (store.Token, error) {
	var t store.Token
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		t, err = scanToken(tx.QueryRowContext(ctx, "DELETE FROM tokens WHERE hash = ? AND kind = ? AND "+unexpired+
			" RETURNING "+tokenCols, hash, kind, toDB(now)))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Token{}, fmt.Errorf("consume %s token: %w", kind, err)
	}
	return t, nil
}

// DeleteAccountTokens removes the account's tokens of that kind ("" for all kinds).
func (s *Store) DeleteAccountTokens(ctx context.Context, accountID, kind string) error {
	_, err := s.exec(ctx, "DELETE FROM tokens WHERE account_id = ? AND (? = '' OR kind = ?)", accountID, kind, kind)
	if err != nil {
		return fmt.Errorf("delete tokens of %q: %w", accountID, err)
	}
	return nil
}

// DeleteExpiredTokens removes tokens expired at now.
func (s *Store) DeleteExpiredTokens(ctx context.Context, now time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM tokens WHERE "+expired, toDB(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired tokens: %w", err)
	}
	return n, nil
}
