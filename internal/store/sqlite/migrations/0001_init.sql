-- idbridge SQLite schema, version 1.
-- Times are INTEGER unix nanoseconds in UTC; 0 is the zero time.
-- Booleans are INTEGER 0 or 1.

CREATE TABLE accounts (
	id             TEXT    NOT NULL PRIMARY KEY,
	username       TEXT    NOT NULL UNIQUE CHECK (username <> ''), -- lowercase; tombstones keep it
	first_name     TEXT    NOT NULL DEFAULT '',
	last_name      TEXT    NOT NULL DEFAULT '',
	email          TEXT    NOT NULL DEFAULT '',
	email_key      TEXT    NOT NULL DEFAULT '', -- email lowercased by the store, for lookups and uniqueness
	email_verified INTEGER NOT NULL DEFAULT 0,
	ever_verified  INTEGER NOT NULL DEFAULT 0,  -- set once email_verified was ever true; PurgeUnverified spares it
	pending_email  TEXT    NOT NULL DEFAULT '',
	password_hash  TEXT    NOT NULL DEFAULT '',
	locked         INTEGER NOT NULL DEFAULT 0,
	deleted        INTEGER NOT NULL DEFAULT 0,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	last_login_at  INTEGER NOT NULL DEFAULT 0
) STRICT;

-- A verified email belongs to one account only.
CREATE UNIQUE INDEX accounts_verified_email ON accounts (email_key)
	WHERE email_verified = 1 AND email_key <> '';
CREATE INDEX accounts_unverified_created ON accounts (created_at)
	WHERE ever_verified = 0 AND deleted = 0;

CREATE TABLE account_groups (
	account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       TEXT NOT NULL CHECK (name <> ''),
	PRIMARY KEY (account_id, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX account_groups_name ON account_groups (name, account_id);

CREATE TABLE sessions (
	id           TEXT    NOT NULL PRIMARY KEY,
	account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	authn_at     INTEGER NOT NULL,
	ip           TEXT    NOT NULL DEFAULT '',
	user_agent   TEXT    NOT NULL DEFAULT '',
	participants TEXT    NOT NULL DEFAULT '[]' -- JSON array of store.Participant
) STRICT;
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

CREATE TABLE tokens (
	hash       TEXT    NOT NULL PRIMARY KEY,
	kind       TEXT    NOT NULL,
	account_id TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	email      TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX tokens_account ON tokens (account_id, kind);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE counters (
	key          TEXT    NOT NULL PRIMARY KEY,
	count        INTEGER NOT NULL,
	window_start INTEGER NOT NULL,
	last_hit     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE ephemeral (
	key        TEXT    NOT NULL PRIMARY KEY,
	value      BLOB    NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX ephemeral_expires ON ephemeral (expires_at);

CREATE TABLE secrets (
	name       TEXT    NOT NULL PRIMARY KEY,
	value      BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	purpose    TEXT    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retired')),
	key_pem    BLOB    NOT NULL,
	cert_pem   BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
-- Exactly one key signs per purpose.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';

CREATE TABLE outmail (
	id           INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	mail_from    TEXT    NOT NULL,
	rcpt_to      TEXT    NOT NULL,
	data         BLOB    NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,
	last_error   TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	sent_at      INTEGER NOT NULL DEFAULT 0,
	failed       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX outmail_due ON outmail (next_attempt) WHERE sent_at = 0 AND failed = 0;

CREATE TABLE audit (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	time       INTEGER NOT NULL,
	type       TEXT    NOT NULL,
	account_id TEXT    NOT NULL DEFAULT '',
	username   TEXT    NOT NULL DEFAULT '',
	ip         TEXT    NOT NULL DEFAULT '',
	actor      TEXT    NOT NULL DEFAULT '',
	detail     TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_username_time ON audit (username, time);
