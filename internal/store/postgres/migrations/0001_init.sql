-- idbridge PostgreSQL schema, version 1.
-- Times are timestamptz; NULL stands for the zero time.

CREATE TABLE accounts (
	id             text        NOT NULL PRIMARY KEY,
	username       text        NOT NULL CHECK (username <> ''), -- lowercase; tombstones keep it
	first_name     text        NOT NULL DEFAULT '',
	last_name      text        NOT NULL DEFAULT '',
	email          text        NOT NULL DEFAULT '',
	email_key      text        NOT NULL DEFAULT '', -- email lowercased by the store, for lookups and uniqueness
	email_verified boolean     NOT NULL DEFAULT false,
	ever_verified  boolean     NOT NULL DEFAULT false, -- PurgeUnverified spares accounts verified once
	pending_email  text        NOT NULL DEFAULT '',
	password_hash  text        NOT NULL DEFAULT '',
	locked         boolean     NOT NULL DEFAULT false,
	deleted        boolean     NOT NULL DEFAULT false,
	created_at     timestamptz,
	updated_at     timestamptz,
	last_login_at  timestamptz,
	CONSTRAINT accounts_username_key UNIQUE (username)
);

-- A verified email belongs to one account only.
CREATE UNIQUE INDEX accounts_verified_email ON accounts (email_key)
	WHERE email_verified AND email_key <> '';
CREATE INDEX accounts_unverified_created ON accounts (created_at)
	WHERE NOT ever_verified AND NOT deleted;

CREATE TABLE account_groups (
	account_id text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name       text NOT NULL CHECK (name <> ''),
	PRIMARY KEY (account_id, name)
);
CREATE INDEX account_groups_name ON account_groups (name, account_id);

CREATE TABLE sessions (
	id           text        NOT NULL PRIMARY KEY,
	account_id   text        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	created_at   timestamptz,
	last_seen_at timestamptz,
	expires_at   timestamptz,
	authn_at     timestamptz,
	ip           text        NOT NULL DEFAULT '',
	user_agent   text        NOT NULL DEFAULT '',
	participants jsonb       NOT NULL DEFAULT '[]'
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen_at);

CREATE TABLE tokens (
	hash       text        NOT NULL PRIMARY KEY,
	kind       text        NOT NULL,
	account_id text        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	email      text        NOT NULL DEFAULT '',
	created_at timestamptz,
	expires_at timestamptz
);
CREATE INDEX tokens_account ON tokens (account_id, kind);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE counters (
	key          text        NOT NULL PRIMARY KEY,
	count        integer     NOT NULL,
	window_start timestamptz,
	last_hit     timestamptz
);

CREATE TABLE ephemeral (
	key        text        NOT NULL PRIMARY KEY,
	value      bytea       NOT NULL,
	expires_at timestamptz
);
CREATE INDEX ephemeral_expires ON ephemeral (expires_at);

CREATE TABLE secrets (
	name       text        NOT NULL PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signing_keys (
	id         text        NOT NULL PRIMARY KEY,
	purpose    text        NOT NULL,
	state      text        NOT NULL CHECK (state IN ('next', 'active', 'retired')),
	key_pem    bytea       NOT NULL,
	cert_pem   bytea       NOT NULL,
	created_at timestamptz
);
-- Exactly one key signs per purpose.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (purpose) WHERE state = 'active';

CREATE TABLE outmail (
	id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	mail_from    text        NOT NULL,
	rcpt_to      text        NOT NULL,
	data         bytea       NOT NULL,
	attempts     integer     NOT NULL DEFAULT 0,
	next_attempt timestamptz,
	last_error   text        NOT NULL DEFAULT '',
	created_at   timestamptz,
	sent_at      timestamptz,
	failed       boolean     NOT NULL DEFAULT false
);
CREATE INDEX outmail_due ON outmail (next_attempt) WHERE sent_at IS NULL AND NOT failed;

CREATE TABLE audit (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time       timestamptz NOT NULL,
	type       text        NOT NULL,
	account_id text        NOT NULL DEFAULT '',
	username   text        NOT NULL DEFAULT '',
	ip         text        NOT NULL DEFAULT '',
	actor      text        NOT NULL DEFAULT '',
	detail     text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_username_time ON audit (username, time);
