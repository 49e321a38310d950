-- Credits as grants and holds (issue 15): every credit is a grant that may expire, spending
-- draws from grants soonest-expiring first and records what it drew, and holds reserve tokens
-- before work runs. Kept in step with ../postgres/0004_credits.sql.

INSERT INTO ledger_sources (name) VALUES ('capture'), ('expiry');

-- What is reserved by open holds, and a lower bound of the earliest moment a grant or a hold
-- of the user expires (NULL: nothing expires). A posting whose moment has come settles the
-- user's expiries first, so an expired grant is never spent and an expired hold never held.
ALTER TABLE token_balances ADD COLUMN held INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0);
ALTER TABLE token_balances ADD COLUMN next_expiry INTEGER;

-- A reservation of tokens for work that has not ended. `api_key_id` is the service key that
-- opened it: only that key may capture or release it.
CREATE TABLE token_holds (
    id               INTEGER PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    api_key_id       INTEGER REFERENCES api_keys (id),
    tokens           INTEGER NOT NULL CHECK (tokens > 0),
    reason           TEXT    NOT NULL CHECK (length(reason) > 0),
    idempotency_key  TEXT    NOT NULL UNIQUE,
    state            TEXT    NOT NULL CHECK (state IN ('open', 'captured', 'released', 'expired')),
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    settled_at       INTEGER,
    capture_entry_id INTEGER REFERENCES token_ledger (id)
);
CREATE INDEX token_holds_open ON token_holds (user_id, expires_at) WHERE state = 'open';

-- A capture's ledger row names its hold.
ALTER TABLE token_ledger ADD COLUMN hold_id INTEGER REFERENCES token_holds (id);

-- Every credit is a grant: `remaining` is what is left to spend, until `expires_at` (NULL:
-- never). A plan grant with a rollover cap keeps up to the cap for one more period when it
-- expires. `entry_id` is the credit; NULL only for the balance carried over from before grants.
CREATE TABLE token_grants (
    id                 INTEGER PRIMARY KEY,
    user_id            INTEGER NOT NULL REFERENCES users (id),
    entry_id           INTEGER UNIQUE REFERENCES token_ledger (id),
    tokens             INTEGER NOT NULL CHECK (tokens > 0),
    remaining          INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= tokens),
    expires_at         INTEGER,
    rollover_cap       INTEGER CHECK (rollover_cap > 0),
    rollover_period_ms INTEGER CHECK (rollover_period_ms > 0),
    rolled_over        INTEGER NOT NULL DEFAULT 0 CHECK (rolled_over IN (0, 1)),
    created_at         INTEGER NOT NULL,
    expired_at         INTEGER
);
CREATE INDEX token_grants_live ON token_grants (user_id, expires_at, id) WHERE expired_at IS NULL;

-- What each spending entry (a consume, a capture, a reversal, an expiry) drew from which grant.
CREATE TABLE token_draws (
    entry_id INTEGER NOT NULL REFERENCES token_ledger (id),
    grant_id INTEGER NOT NULL REFERENCES token_grants (id),
    tokens   INTEGER NOT NULL CHECK (tokens > 0),
    PRIMARY KEY (entry_id, grant_id)
);
CREATE INDEX token_draws_by_grant ON token_draws (grant_id);

-- Balances from before grants become one grant each that never expires.
INSERT INTO token_grants (user_id, entry_id, tokens, remaining, expires_at, created_at)
    SELECT user_id, NULL, balance, balance, NULL, updated_at FROM token_balances WHERE balance > 0;
