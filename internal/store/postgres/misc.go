package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/idbridge/idbridge/internal/store"
)

// Hit counts one hit in an atomic upsert.
func (s *Store) Hit(ctx context.Context, key string, now time.Time, window time.Duration) (store.Counter, error) {
	c := store.Counter{Key: key}
	var start, last pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, `INSERT INTO counters AS c (key, count, window_start, last_hit) VALUES ($1, 1, $2, $2)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN c.window_start <= $3 THEN 1 ELSE c.count + 1 END,
			window_start = CASE WHEN c.window_start <= $3 THEN excluded.window_start ELSE c.window_start END,
			last_hit = excluded.last_hit
		RETURNING count, window_start, last_hit`, key, ts(now), ts(now.Add(-window))).Scan(&c.Count, &start, &last)
	if err != nil {
		return store.Counter{}, fmt.Errorf("hit counter %q: %w", key, err)
	}
	c.WindowStart, c.LastHit = fromTS(start), fromTS(last)
	return c, nil
}

// Attempt reads the counter FOR UPDATE, asks allow, and counts in the same
// transaction, so that concurrent attempts on several nodes are serialised.
func (s *Store) Attempt(ctx context.Context, key string, now time.Time, window time.Duration, allow func(store.Counter) bool) (store.Counter, bool, error) {
	c := store.Counter{Key: key}
	ok := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// FOR UPDATE locks nothing when the row does not exist yet, and
		// concurrent first attempts would then all see a zero counter:
		// make sure the row exists (at zero) before locking it.
		if _, err := tx.Exec(ctx, `INSERT INTO counters (key, count, window_start, last_hit) VALUES ($1, 0, $2, $2)
			ON CONFLICT (key) DO NOTHING`, key, ts(now)); err != nil {
			return err
		}
		var start, last pgtype.Timestamptz
		cur := store.Counter{Key: key}
		err := tx.QueryRow(ctx, "SELECT count, window_start, last_hit FROM counters WHERE key = $1 FOR UPDATE", key).Scan(&cur.Count, &start, &last)
		switch {
		case err == nil:
			cur.WindowStart, cur.LastHit = fromTS(start), fromTS(last)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if !allow(cur) {
			c = cur
			return nil
		}
		ok = true
		err = tx.QueryRow(ctx, `INSERT INTO counters AS c (key, count, window_start, last_hit) VALUES ($1, 1, $2, $2)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN c.window_start <= $3 THEN 1 ELSE c.count + 1 END,
				window_start = CASE WHEN c.window_start <= $3 THEN excluded.window_start ELSE c.window_start END,
				last_hit = excluded.last_hit
			RETURNING count, window_start, last_hit`, key, ts(now), ts(now.Add(-window))).Scan(&c.Count, &start, &last)
		c.WindowStart, c.LastHit = fromTS(start), fromTS(last)
		return err
	})
	if err != nil {
		return store.Counter{}, false, fmt.Errorf("attempt counter %q: %w", key, err)
	}
	return c, ok, nil
}

// Release takes one back from the counter, never below zero.
func (s *Store) Release(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, "UPDATE counters SET count = count - 1 WHERE key = $1 AND count > 0", key); err != nil {
		return fmt.Errorf("release counter %q: %w", key, err)
	}
	return nil
}

// GetCounter returns the counter, or a zero Counter if there is none.
func (s *Store) GetCounter(ctx context.Context, key string) (store.Counter, error) {
	c := store.Counter{Key: key}
	var start, last pgtype.Timestamptz
	err := s.pool.QueryRow(ctx, "SELECT count, window_start, last_hit FROM counters WHERE key = $1", key).Scan(&c.Count, &start, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Counter{}, nil
	}
	if err != nil {
		return store.Counter{}, fmt.Errorf("get counter %q: %w", key, err)
	}
	c.WindowStart, c.LastHit = fromTS(start), fromTS(last)
	return c, nil
}

// ResetCounter removes the counter.
func (s *Store) ResetCounter(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM counters WHERE key = $1", key); err != nil {
		return fmt.Errorf("reset counter %q: %w", key, err)
	}
	return nil
}

// PutEphemeral stores value under key until expires (zero: never). An expired
// value under the same key (by this node's wall clock) is replaced.
func (s *Store) PutEphemeral(ctx context.Context, key string, value []byte, expires time.Time) error {
	if value == nil {
		value = []byte{}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO ephemeral (key, value, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
		WHERE ephemeral.expires_at <= $4`, key, value, ts(expires), ts(time.Now()))
	if err != nil {
		return fmt.Errorf("put ephemeral %q: %w", key, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("put ephemeral %q: %w", key, store.ErrAlreadyExists)
	}
	return nil
}

// TakeEphemeral deletes and returns the value if it has not expired at now.
func (s *Store) TakeEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, "DELETE FROM ephemeral WHERE key = $1 AND "+unexpired(2)+" RETURNING value", key, ts(now)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("take ephemeral %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("take ephemeral %q: %w", key, err)
	}
	return v, nil
}

// GetEphemeral returns the value if it has not expired at now.
func (s *Store) GetEphemeral(ctx context.Context, key string, now time.Time) ([]byte, error) {
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM ephemeral WHERE key = $1 AND "+unexpired(2), key, ts(now)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get ephemeral %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get ephemeral %q: %w", key, err)
	}
	return v, nil
}

// DeleteExpiredEphemeral removes values expired at now.
func (s *Store) DeleteExpiredEphemeral(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM ephemeral WHERE expires_at <= $1", ts(now))
	if err != nil {
		return 0, fmt.Errorf("delete expired ephemeral values: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// GetOrCreateSecret returns the named secret, storing gen's value first when
// there is none. The first value stored, by any node, wins.
func (s *Store) GetOrCreateSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, errors.New("get secret: empty name")
	}
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM secrets WHERE name = $1", name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	nv, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate secret %q: %w", name, err)
	}
	if len(nv) == 0 {
		return nil, fmt.Errorf("generate secret %q: empty value", name)
	}
	// The INSERT waits for a concurrent insert of the same name to commit;
	// the following SELECT, a new snapshot, then sees the winner.
	if _, err := s.pool.Exec(ctx, "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", name, nv); err != nil {
		return nil, fmt.Errorf("store secret %q: %w", name, err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT value FROM secrets WHERE name = $1", name).Scan(&v); err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	return v, nil
}

func validKeyState(state string) bool {
	return state == store.KeyNext || state == store.KeyActive || state == store.KeyRetired
}

// ListKeys returns the keys of purpose ("" for every purpose), oldest first.
func (s *Store) ListKeys(ctx context.Context, purpose string) ([]store.SigningKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, purpose, state, key_pem, cert_pem, created_at FROM signing_keys
		WHERE $1 = '' OR purpose = $1 ORDER BY created_at, id COLLATE "C"`, purpose)
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", purpose, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SigningKey, error) {
		var k store.SigningKey
		var created pgtype.Timestamptz
		err := r.Scan(&k.ID, &k.Purpose, &k.State, &k.KeyPEM, &k.CertPEM, &created)
		k.CreatedAt = fromTS(created)
		if len(k.CertPEM) == 0 {
			k.CertPEM = nil
		}
		return k, err
	})
	if err != nil {
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
	_, err := s.pool.Exec(ctx, `INSERT INTO signing_keys (id, purpose, state, key_pem, cert_pem, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, k.ID, k.Purpose, k.State, k.KeyPEM, cert, ts(k.CreatedAt))
	if constraint(err, uniqueViolation) != "" {
		return fmt.Errorf("add %s key %q: %w", k.Purpose, k.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("add %s key %q: %w", k.Purpose, k.ID, err)
	}
	return nil
}

// SetKeyState changes the key's state; making it active retires the key of
// the same purpose that was active. Changes to one purpose's keys are
// serialized by an advisory lock.
func (s *Store) SetKeyState(ctx context.Context, id, state string) error {
	if !validKeyState(state) {
		return fmt.Errorf("set key %q state: invalid state %q", id, state)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var purpose string
		err := tx.QueryRow(ctx, "SELECT purpose FROM signing_keys WHERE id = $1", id).Scan(&purpose)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('idbridge:keys:' || $1::text))", purpose); err != nil {
			return err
		}
		if state == store.KeyActive {
			if _, err := tx.Exec(ctx, "UPDATE signing_keys SET state = 'retired' WHERE purpose = $1 AND state = 'active' AND id <> $2", purpose, id); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, "UPDATE signing_keys SET state = $1 WHERE id = $2", state, id)
		if err == nil && tag.RowsAffected() == 0 {
			return store.ErrNotFound // deleted meanwhile
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("set key %q state to %s: %w", id, state, err)
	}
	return nil
}

// DeleteKey removes the key; ErrNotFound if there is none.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM signing_keys WHERE id = $1", id)
	if err != nil {
		return fmt.Errorf("delete key %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete key %q: %w", id, store.ErrNotFound)
	}
	return nil
}

const mailCols = "id, mail_from, rcpt_to, data, attempts, next_attempt, last_error, created_at, sent_at, failed"

func scanMail(row pgx.Row) (store.OutMail, error) {
	var m store.OutMail
	var next, created, sent pgtype.Timestamptz
	err := row.Scan(&m.ID, &m.From, &m.To, &m.Data, &m.Attempts, &next, &m.LastError, &created, &sent, &m.Failed)
	m.NextAttempt, m.CreatedAt, m.SentAt = fromTS(next), fromTS(created), fromTS(sent)
	return m, err
}

func collectMail(rows pgx.Rows) ([]store.OutMail, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.OutMail, error) { return scanMail(r) })
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
	err := s.pool.QueryRow(ctx, `INSERT INTO outmail (mail_from, rcpt_to, data, attempts, next_attempt,
		last_error, created_at, sent_at, failed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
		m.From, m.To, m.Data, m.Attempts, ts(m.NextAttempt), m.LastError, ts(m.CreatedAt), ts(m.SentAt), m.Failed).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("enqueue mail to %q: %w", m.To, err)
	}
	return id, nil
}

// ClaimMail leases up to limit (0: no limit) due messages until leaseUntil,
// oldest due first. Rows another node is claiming are skipped, not waited for.
func (s *Store) ClaimMail(ctx context.Context, now, leaseUntil time.Time, lim int) ([]store.OutMail, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT id FROM outmail WHERE sent_at IS NULL AND NOT failed AND next_attempt <= $1
			ORDER BY next_attempt, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		UPDATE outmail o SET next_attempt = $2 FROM due WHERE o.id = due.id
		RETURNING o.id, o.mail_from, o.rcpt_to, o.data, o.attempts, o.next_attempt, o.last_error,
			o.created_at, o.sent_at, o.failed`, ts(now), ts(leaseUntil), limit(lim))
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	out, err := collectMail(rows)
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", err)
	}
	sortMail(out)
	return out, nil
}

func sortMail(ms []store.OutMail) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
}

// MarkMailSent records a delivery, counting it as an attempt.
func (s *Store) MarkMailSent(ctx context.Context, id int64, at time.Time) error {
	tag, err := s.pool.Exec(ctx, "UPDATE outmail SET sent_at = $1, attempts = attempts + 1, last_error = '' WHERE id = $2", ts(at), id)
	if err != nil {
		return fmt.Errorf("mark mail %d sent: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("mark mail %d sent: %w", id, store.ErrNotFound)
	}
	return nil
}

// MarkMailRetry records a failed attempt; failed gives up on the message.
func (s *Store) MarkMailRetry(ctx context.Context, id int64, next time.Time, lastErr string, failed bool) error {
	tag, err := s.pool.Exec(ctx, "UPDATE outmail SET next_attempt = $1, attempts = attempts + 1, last_error = $2, failed = $3 WHERE id = $4",
		ts(next), lastErr, failed, id)
	if err != nil {
		return fmt.Errorf("mark mail %d for retry: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("mark mail %d for retry: %w", id, store.ErrNotFound)
	}
	return nil
}

// ListMail returns up to limit (0: no limit) messages, newest first.
func (s *Store) ListMail(ctx context.Context, lim int) ([]store.OutMail, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+mailCols+" FROM outmail ORDER BY id DESC LIMIT $1", limit(lim))
	if err != nil {
		return nil, fmt.Errorf("list mail: %w", err)
	}
	out, err := collectMail(rows)
	if err != nil {
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
	_, err := s.pool.Exec(ctx, `INSERT INTO audit (time, type, account_id, username, ip, actor, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, ts(e.Time), e.Type, e.AccountID, strings.ToLower(e.Username), e.IP, e.Actor, e.Detail)
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
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Username != "" {
		where = append(where, "username = "+arg(strings.ToLower(f.Username)))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(ts(f.Since)))
	}
	if f.Type != "" {
		where = append(where, "type = "+arg(f.Type))
	}
	query := "SELECT id, time, type, account_id, username, ip, actor, detail FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time DESC, id DESC LIMIT " + arg(limit(f.Limit))
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AuditEvent, error) {
		var e store.AuditEvent
		var t pgtype.Timestamptz
		err := r.Scan(&e.ID, &t, &e.Type, &e.AccountID, &e.Username, &e.IP, &e.Actor, &e.Detail)
		e.Time = fromTS(t)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}
