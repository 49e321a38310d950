-- The whole schema: accounts, the ledger, Stripe state, keys and limits.
-- Kept in step with ../postgres/0001_schema.sql.
-- Times are milliseconds since the Unix epoch (UTC). Token counts and money are integers.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT,
    role          TEXT    NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE billing_customers (
    user_id            INTEGER PRIMARY KEY REFERENCES users (id),
    stripe_customer_id TEXT    NOT NULL UNIQUE,
    created_at         INTEGER NOT NULL
);

-- One row a user, created with the user, changed in the same transaction as each ledger row.
CREATE TABLE token_balances (
    user_id    INTEGER PRIMARY KEY REFERENCES users (id),
    balance    INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- Append-only: the triggers below refuse updates and deletes.
CREATE TABLE token_ledger (
    id                    INTEGER PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users (id),
    delta                 INTEGER NOT NULL CHECK (delta <> 0),
    balance_after         INTEGER NOT NULL,
    source                TEXT    NOT NULL CHECK (source IN ('stripe_checkout', 'stripe_invoice',
                              'stripe_refund', 'stripe_dispute', 'manual', 'consume')),
    reason                TEXT    NOT NULL CHECK (length(reason) > 0),
    idempotency_key       TEXT    NOT NULL UNIQUE,
    stripe_event_id       TEXT,
    stripe_object_id      TEXT,
    stripe_payment_intent TEXT,
    amount_paid_minor     INTEGER CHECK (amount_paid_minor >= 0),
    currency              TEXT,
    actor_id              INTEGER REFERENCES users (id),
    created_at            INTEGER NOT NULL
);
CREATE INDEX token_ledger_by_user ON token_ledger (user_id, id);
CREATE INDEX token_ledger_by_user_source ON token_ledger (user_id, source, id);

CREATE TRIGGER token_ledger_no_update BEFORE UPDATE ON token_ledger
BEGIN
    SELECT RAISE(ABORT, 'token_ledger is append-only');
END;
CREATE TRIGGER token_ledger_no_delete BEFORE DELETE ON token_ledger
BEGIN
    SELECT RAISE(ABORT, 'token_ledger is append-only');
END;

-- Service keys for the consume API, stored as SHA-256 digests of the secret.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    digest       TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);

-- The Stripe event inbox: every verified event is kept, with what applying it did.
CREATE TABLE stripe_events (
    id             TEXT    PRIMARY KEY,
    type           TEXT    NOT NULL,
    livemode       INTEGER NOT NULL DEFAULT 0 CHECK (livemode IN (0, 1)),
    stripe_created INTEGER NOT NULL,
    payload        TEXT    NOT NULL,
    received_at    INTEGER NOT NULL,
    processed_at   INTEGER,
    outcome        TEXT,
    detail         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX stripe_events_unprocessed ON stripe_events (received_at) WHERE processed_at IS NULL;

-- Subscriptions as Stripe last described them.
CREATE TABLE subscriptions (
    stripe_subscription_id TEXT    PRIMARY KEY,
    user_id                INTEGER NOT NULL REFERENCES users (id),
    stripe_customer_id     TEXT    NOT NULL,
    status                 TEXT    NOT NULL,
    price_id               TEXT,
    current_period_end     INTEGER,
    cancel_at_period_end   INTEGER NOT NULL DEFAULT 0 CHECK (cancel_at_period_end IN (0, 1)),
    cancel_at              INTEGER,
    canceled_at            INTEGER,
    -- Stripe's time of the event this row reflects: an older event never overwrites a newer one.
    stripe_updated         INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX subscriptions_by_user ON subscriptions (user_id);

-- Rate limits shared by every node: one row a key, its GCRA "theoretical arrival time".
CREATE TABLE rate_limits (
    key TEXT    PRIMARY KEY,
    tat INTEGER NOT NULL
);

-- Login sessions, in the layout tower-sessions' SqliteStore reads.
CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY NOT NULL,
    data        BLOB    NOT NULL,
    expiry_date INTEGER NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expiry_date);
