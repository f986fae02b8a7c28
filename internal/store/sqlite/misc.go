package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/idbridge/idbridge/internal/store"
)

// Hit counts one hit in an atomic upsert.
func (s *Store) Hit(ctx context.Context, key string, now time.Time, window time.Duration) (store.Counter, error) {
	c := store.Counter{Key: key}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var start, last int64
		err := tx.QueryRowContext(ctx, `INSERT INTO counters (key, count, window_start, last_hit) VALUES (?1, 1, ?2, ?2)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN counters.window_start <= ?3 THEN 1 ELSE counters.count + 1 END,
				window_start = CASE WHEN counters.window_start <= ?3 THEN excluded.window_start ELSE counters.window_start END,
				last_hit = excluded.last_hit
			RETURNING count, window_start, last_hit`, key, toDB(now), toDB(now.Add(-window))).Scan(&c.Count, &start, &last)
		c.WindowStart, c.LastHit = fromDB(start), fromDB(last)
		return err
	})
	if err != nil {
		return store.Counter{}, fmt.Errorf("hit counter %q: %w", key, err)
	}
	return c, nil
}

// Attempt reads the counter, asks allow, and counts, all in one IMMEDIATE
// transaction on the single writer connection.
func (s *Store) Attempt(ctx context.Context, key string, now time.Time, window time.Duration, allow func(store.Counter) bool) (store.Counter, bool, error) {
	c := store.Counter{Key: key}
	ok := false
	err := s.write(ctx, func(tx *sql.Tx) error {
		var start, last int64
		cur := store.Counter{Key: key}
		err := tx.QueryRowContext(ctx, "SELECT count, window_start, last_hit FROM counters WHERE key = ?", key).Scan(&cur.Count, &start, &last)
		switch {
		case err == nil:
			cur.WindowStart, cur.LastHit = fromDB(start), fromDB(last)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if !allow(cur) {
			c = cur
			return nil
		}
		ok = true
		err = tx.QueryRowContext(ctx, `INSERT INTO counters (key, count, window_start, last_hit) VALUES (?1, 1, ?2, ?2)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN counters.window_start <= ?3 THEN 1 ELSE counters.count + 1 END,
				window_start = CASE WHEN counters.window_start <= ?3 THEN excluded.window_start ELSE counters.window_start END,
				last_hit = excluded.last_hit
			RETURNING count, window_start, last_hit`, key, toDB(now), toDB(now.Add(-window))).Scan(&c.Count, &start, &last)
		c.WindowStart, c.LastHit = fromDB(start), fromDB(last)
		return err
	})
	if err != nil {
		return store.Counter{}, false, fmt.Errorf("attempt counter %q: %w", key, err)
	}
	return c, ok, nil
}

// Release takes one back from the counter, never below zero.
func (s *Store) Release(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, "UPDATE counters SET count = count - 1 WHERE key = ? AND count > 0", key); err != nil {
		return fmt.Errorf("release counter %q: %w", key, err)
	}
	return nil
}

// GetCounter returns the counter, or a zero Counter if there is none.
func (s *Store) GetCounter(ctx context.Context, key string) (store.Counter, error) {
	c := store.Counter{Key: key}
	var start, last int64
	err := s.r.QueryRowContext(ctx, "SELECT count, window_start, last_hit FROM counters WHERE key = ?", key).Scan(&c.Count, &start, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Counter{}, nil
	}
	if err != nil {
		return store.Counter{}, fmt.Errorf("get counter %q: %w", key, err)
	}
	c.WindowStart, c.LastHit = fromDB(start), fromDB(last)
	return c, nil
}

// ResetCounter removes the counter.
func (s *Store) ResetCounter(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, "DELETE FROM counters WHERE key = ?", key); err != nil {
		return fmt.Errorf("reset counter %q: %w", key, err)
	}
	return nil
}

// PutEphemeral stores value under key until expires (zero: never). An expired
// value under the same key (by the wall clock) is replaced.
func (s *Store) PutEphemeral(ctx context.Context, key string, value []byte, expires time.Time) error {
	if value == nil {
		value = []byte{}
	}
	n, err := s.exec(ctx, `INSERT INTO ephemeral (key, value, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
		WHERE ephemeral.expires_at <> 0 AND ephemeral.expires_at <= ?`,
		key, value, toDB(expires), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("put ephemeral %q: %w", key, err)
	}
	if n == 0 {
		return fmt.Errorf("put ephemeral %q: %w", key, store.ErrAlreadyExists)
	}
	return nil
}

// TakeEphemeral deletes and returns the value if it has not expired at now.
func (s *Store) TakeEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "DELETE FROM ephemeral WHERE key = ? AND "+unexpired+" RETURNING value",
			key, toDB(now)).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("take ephemeral %q: %w", key, err)
	}
	return v, nil
}

// GetEphemeral returns the value if it has not expired at now.
func (s *Store) GetEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, "SELECT value FROM ephemeral WHERE key = ? AND "+unexpired, key, toDB(now)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get ephemeral %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get ephemeral %q: %w", key, err)
	}
	return v, nil
}

// DeleteExpiredEphemeral removes values expired at now.
func (s *Store) DeleteExpiredEphemeral(ctx context.Context, now time.Time) (int, error) {
	n, err := s.exec(ctx, "DELETE FROM ephemeral WHERE "+expired, toDB(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired ephemeral values: %w", err)
	}
	return n, nil
}

// GetOrCreateSecret returns the named secret, storing gen's value first when
// there is none. The first value stored wins.
func (s *Store) GetOrCreateSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, errors.New("get secret: empty name")
	}
	var v []byte
	err := s.r.QueryRowContext(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	nv, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate secret %q: %w", name, err)
	}
	if len(nv) == 0 {
		return nil, fmt.Errorf("generate secret %q: empty value", name)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
			name, nv, time.Now().UnixNano()); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, "SELECT value FROM secrets WHERE name = ?", name).Scan(&v)
	})
	if err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	return v, nil
}

func validKeyState(state string) bool {
	return state == store.KeyNext || state == store.KeyActive || state == store.KeyRetired
}

// ListKeys returns the keys of purpose ("" for every purpose), oldest first.
func (s *Store) ListKeys(ctx context.Context, purpose string) ([]store.SigningKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, purpose, state, key_pem, cert_pem, created_at FROM signing_keys
		WHERE ? = '' OR purpose = ? ORDER BY created_at, id`, purpose, purpose)
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", purpose, err)
	}
	defer rows.Close()
	var out []store.SigningKey
	for rows.Next() {
		var k store.SigningKey
		var created int64
		if err := rows.Scan(&k.ID, &k.Purpose, &k.State, &k.KeyPEM, &k.CertPEM, &created); err != nil {
			return nil, fmt.Errorf("list %s keys: %w", purpose, err)
		}
		k.CreatedAt = fromDB(created)
		if len(k.CertPEM) == 0 {
			k.CertPEM = nil
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s keys: %w", purpose, err)
	}
	return out, nil
}

// AddKey stores a signing key. ErrAlreadyExists if the id is taken or if k is
// active while another key of its purpose is.
func (s *Store) AddKey(ctx context.Context, k store.SigningKey) error {
	if k.ID == "" || k.Purpose == "" || !validKeyState(k.State) {
		return fmt.Errorf("add key %q: need an id, a purpose and a state (next, active or retired)", k.ID)
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now()
	}
	cert := k.CertPEM
	if cert == nil {
		cert = []byte{}
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, purpose, state, key_pem, cert_pem, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, k.ID, k.Purpose, k.State, k.KeyPEM, cert, toDB(k.CreatedAt))
		if isUnique(err) {
			return store.ErrAlreadyExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("add %s key %q: %w", k.Purpose, k.ID, err)
	}
	return nil
}

// SetKeyState changes the key's state; making it active retires the key of
// the same purpose that was active.
func (s *Store) SetKeyState(ctx context.Context, id, state string) error {
	if !validKeyState(state) {
		return fmt.Errorf("set key %q state: invalid state %q", id, state)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		var purpose string
		err := tx.QueryRowContext(ctx, "SELECT purpose FROM signing_keys WHERE id = ?", id).Scan(&purpose)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if state == store.KeyActive {
			if _, err := tx.ExecContext(ctx, "UPDATE signing_keys SET state = 'retired' WHERE purpose = ? AND state = 'active' AND id <> ?", purpose, id); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, "UPDATE signing_keys SET state = ? WHERE id = ?", state, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set key %q state to %s: %w", id, state, err)
	}
	return nil
}

// DeleteKey removes the key; ErrNotFound if there is none.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	n, err := s.exec(ctx, "DELETE FROM signing_keys WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete key %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("delete key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

const mailCols = "id, mail_from, rcpt_to, data, attempts, next_attempt, last_error, created_at, sent_at, failed"

func scanMail(row rowScanner) (store.OutMail, error) {
	var m store.OutMail
	var next, created, sent int64
	err := row.Scan(&m.ID, &m.From, &m.To, &m.Data, &m.Attempts, &next, &m.LastError, &created, &sent, &m.Failed)
	m.NextAttempt, m.CreatedAt, m.SentAt = fromDB(next), fromDB(created), fromDB(sent)
	return m, err
}

// EnqueueMail queues a message and returns its id. A zero CreatedAt is the
// current time; a zero NextAttempt makes it due at once.
func (s *Store) EnqueueMail(ctx context.Context, m store.OutMail) (int64, error) {
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	if m.NextAttempt.IsZero() {
		m.NextAttempt = m.CreatedAt
	}
	if m.Data == nil {
		m.Data = []byte{}
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO outmail (mail_from, rcpt_to, data, attempts, next_attempt,
			last_error, created_at, sent_at, failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			m.From, m.To, m.Data, m.Attempts, toDB(m.NextAttempt), m.LastError, toDB(m.CreatedAt),
			toDB(m.SentAt), m.Failed).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue mail to %q: %w", m.To, err)
	}
	return id, nil
}

// ClaimMail leases up to limit (0: no limit) due messages until leaseUntil,
// oldest due first.
func (s *Store) ClaimMail(ctx context.Context, now, leaseUntil time.Time, limit int) ([]store.OutMail, error) {
	if limit <= 0 {
		limit = -1
	}
	var out []store.OutMail
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE outmail SET next_attempt = ? WHERE id IN (
			SELECT id FROM outmail WHERE sent_at = 0 AND failed = 0 AND next_attempt <= ?
			ORDER BY next_attempt, id LIMIT ?) RETURNING `+mailCols, toDB(leaseUntil), toDB(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMail(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// MarkMailSent records a delivery, counting it as an attempt.
func (s *Store) MarkMailSent(ctx context.Context, id int64, at time.Time) error {
	n, err := s.exec(ctx, "UPDATE outmail SET sent_at = ?, attempts = attempts + 1, last_error = '' WHERE id = ?", toDB(at), id)
	if err != nil {
		return fmt.Errorf("mark mail %d sent: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("mark mail %d sent: %w", id, store.ErrNotFound)
	}
	return nil
}

// MarkMailRetry records a failed attempt; failed gives up on the message.
func (s *Store) MarkMailRetry(ctx context.Context, id int64, next time.Time, lastErr string, failed bool) error {
	n, err := s.exec(ctx, "UPDATE outmail SET next_attempt = ?, attempts = attempts + 1, last_error = ?, failed = ? WHERE id = ?",
		toDB(next), lastErr, failed, id)
	if err != nil {
		return fmt.Errorf("mark mail %d for retry: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("mark mail %d for retry: %w", id, store.ErrNotFound)
	}
	return nil
}

// ListMail returns up to limit (0: no limit) messages, newest first.
func (s *Store) ListMail(ctx context.Context, limit int) ([]store.OutMail, error) {
	l, _ := limitOffset(limit, 0)
	rows, err := s.r.QueryContext(ctx, "SELECT "+mailCols+" FROM outmail ORDER BY id DESC LIMIT ?", l)
	if err != nil {
		return nil, fmt.Errorf("list mail: %w", err)
	}
	defer rows.Close()
	var out []store.OutMail
	for rows.Next() {
		m, err := scanMail(rows)
		if err != nil {
			return nil, fmt.Errorf("list mail: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mail: %w", err)
	}
	return out, nil
}

// AddAudit appends an event; a zero Time is the current time and the
// username is stored lowercase.
func (s *Store) AddAudit(ctx context.Context, e store.AuditEvent) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Type == "" {
		return errors.New("add audit event: empty type")
	}
	_, err := s.exec(ctx, `INSERT INTO audit (time, type, account_id, username, ip, actor, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, toDB(e.Time), e.Type, e.AccountID, strings.ToLower(e.Username), e.IP, e.Actor, e.Detail)
	if err != nil {
		return fmt.Errorf("add audit event %s: %w", e.Type, err)
	}
	return nil
}

// ListAudit returns the events matching f, newest first. Username matches
// case-insensitively, Since includes events at that instant.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var where []string
	var args []any
	if f.Username != "" {
		where = append(where, "username = ?")
		args = append(args, strings.ToLower(f.Username))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, toDB(f.Since))
	}
	if f.Type != "" {
		where = append(where, "type = ?")
		args = append(args, f.Type)
	}
	query := "SELECT id, time, type, account_id, username, ip, actor, detail FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	l, _ := limitOffset(f.Limit, 0)
	query += " ORDER BY time DESC, id DESC LIMIT ?"
	args = append(args, l)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Type, &e.AccountID, &e.Username, &e.IP, &e.Actor, &e.Detail); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		e.Time = fromDB(t)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}
