-- Events for the product's backend (issue 16), written by the same transaction as the change
-- that caused them and sent after it commits: a change rolled back leaves no event, and a
-- committed one is sent at least once. Kept in step with ../postgres/0006_outbox.sql.

-- Each event once, in the order one user's changes were made (they take turns on the user's
-- balance row). `fanned_out` turns 1 once a delivery is made for every endpoint registered
-- when it happened.
-- AUTOINCREMENT: an id is never used twice, even after old rows are deleted (receivers drop
-- repeats by `evt_<id>`).
CREATE TABLE outbox_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('ledger.entry_created', 'balance.low',
                   'balance.depleted', 'grant.expiring', 'grant.expired')),
    entry_id   INTEGER REFERENCES token_ledger (id),
    grant_id   INTEGER REFERENCES token_grants (id),
    -- balance.low and balance.depleted: what was available; grant.expiring: what the grant
    -- has left; grant.expired: what expired of it.
    tokens     INTEGER,
    -- grant.*: when the grant ends (or ended), as it stood then.
    expires_at INTEGER,
    -- balance.low: the threshold it went under.
    threshold  INTEGER,
    created_at INTEGER NOT NULL,
    fanned_out INTEGER NOT NULL DEFAULT 0 CHECK (fanned_out IN (0, 1))
);
CREATE INDEX outbox_events_to_fan_out ON outbox_events (id) WHERE fanned_out = 0;

-- Where events go: an operator registers each with a secret of its own (Standard Webhooks).
CREATE TABLE webhook_endpoints (
    id          INTEGER PRIMARY KEY,
    url         TEXT   NOT NULL CHECK (url LIKE 'http://%' OR url LIKE 'https://%'),
    secret      TEXT   NOT NULL CHECK (secret LIKE 'whsec_%'),
    description TEXT   NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    disabled_at INTEGER
);

-- One event on its way to one endpoint: pending until it is answered 2xx (delivered) or its
-- retries run out (failed). A later event of the same user to the same endpoint waits while an
-- earlier one is pending. `leased_until`: a node is sending it.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints (id),
    event_id        INTEGER NOT NULL REFERENCES outbox_events (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    state           TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When its retries began (made, or sent again by `webhooks replay`): three days from then.
    retrying_since  INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    created_at      INTEGER NOT NULL,
    settled_at      INTEGER,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, user_id, event_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';

-- The delivery log: every attempt, with what the endpoint answered.
CREATE TABLE webhook_attempts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id  INTEGER NOT NULL REFERENCES webhook_deliveries (id),
    attempted_at INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

-- How close to its end a grant's last `grant.expiring` event was (7 or 1 days; NULL: none).
ALTER TABLE token_grants ADD COLUMN warned_days INTEGER CHECK (warned_days IN (1, 7));

-- A user's low-balance threshold (NULL: no notice).
ALTER TABLE token_balances ADD COLUMN low_balance_below INTEGER CHECK (low_balance_below > 0);

-- Every ledger row is an event while an endpoint is registered, written by the database in the
-- statement that writes the row, so no path that writes the ledger can leave it out.
CREATE TRIGGER outbox_ledger_entry AFTER INSERT ON token_ledger
    FOR EACH ROW WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled_at IS NULL)
BEGIN
    INSERT INTO outbox_events (user_id, kind, entry_id, created_at)
        VALUES (NEW.user_id, 'ledger.entry_created', NEW.id, NEW.created_at);
END;

-- What is available (the balance less open holds) going under the user's threshold, and
-- running out: once per crossing, from whichever change crossed.
CREATE TRIGGER outbox_balance_crossing AFTER UPDATE OF balance, held ON token_balances
    FOR EACH ROW WHEN NEW.balance - NEW.held < OLD.balance - OLD.held
BEGIN
    INSERT INTO outbox_events (user_id, kind, tokens, threshold, created_at)
        SELECT NEW.user_id, 'balance.low', NEW.balance - NEW.held, NEW.low_balance_below,
               NEW.updated_at
        WHERE NEW.low_balance_below IS NOT NULL
            AND OLD.balance - OLD.held >= NEW.low_balance_below
            AND NEW.balance - NEW.held < NEW.low_balance_below;
    INSERT INTO outbox_events (user_id, kind, tokens, created_at)
        SELECT NEW.user_id, 'balance.depleted', NEW.balance - NEW.held, NEW.updated_at
        WHERE OLD.balance - OLD.held > 0 AND NEW.balance - NEW.held <= 0;
END;
