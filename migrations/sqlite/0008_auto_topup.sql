-- Auto top-up (issue 16): a user's choice (a mark, a pack, a monthly cap, a saved card), and
-- each top-up it starts. The attempt is written by the database in the transaction of the
-- change that takes what is available under the mark, so it is never started for a change
-- rolled back, and at most one per user is ever in flight (a unique index). The server pays
-- it off-session at once and credits it through fulfilment, as any payment.
-- Kept in step with ../postgres/0008_auto_topup.sql.
--
-- Outgoing events gain `topup.succeeded` and `topup.failed`. SQLite cannot change a column's
-- CHECK, so outbox_events is made again, in this migration's transaction: its rows are kept
-- aside, the table dropped and created anew under its own name, and the rows put back, ids
-- and all. Deliveries and notices point at those ids; foreign keys are checked at commit
-- (`defer_foreign_keys`), by when every row they point at is back.
PRAGMA defer_foreign_keys = ON;

INSERT INTO ledger_sources (name) VALUES ('auto_topup');

-- The user's choice. `on`: a top-up starts when what is available goes under `below`;
-- `card_needed`: chosen, no card saved yet; `paused`: the last one failed (why in
-- `paused_reason`) until a card is saved again; `off`: turned off (the card stays saved).
CREATE TABLE auto_topups (
    user_id        INTEGER PRIMARY KEY REFERENCES users (id),
    state          TEXT    NOT NULL CHECK (state IN ('on', 'card_needed', 'paused', 'off')),
    below          INTEGER NOT NULL CHECK (below > 0),
    product        TEXT    NOT NULL CHECK (product IN ('small', 'medium', 'large')),
    -- The most tokens top-ups may add in one calendar month (UTC).
    monthly_cap    INTEGER NOT NULL CHECK (monthly_cap > 0),
    -- The card saved for payments made while the user is away (Stripe's `pm_...`), and how
    -- the page names it.
    payment_method TEXT,
    card           TEXT,
    -- When the setup session that saved the card was made: news of an older one (a webhook
    -- retried late) never replaces a newer card.
    card_as_of     INTEGER,
    paused_reason  TEXT CHECK (paused_reason IN ('declined', 'authentication_required')),
    updated_at     INTEGER NOT NULL,
    CHECK ((state = 'paused') = (paused_reason IS NOT NULL))
);

-- One top-up: `pending` from the crossing until its payment is settled; `succeeded` once its
-- tokens are credited; `failed` (the bank said no, or asked for the cardholder); `capped`
-- (it would have passed the month's cap, so nothing was charged); `canceled` (auto top-up was
-- turned off before it was paid). `tokens` is the pack's, set
-- when the payment is made; the credit names the payment intent.
CREATE TABLE topup_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    product        TEXT    NOT NULL CHECK (product IN ('small', 'medium', 'large')),
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'capped',
                       'canceled')),
    tokens         INTEGER CHECK (tokens > 0),
    payment_intent TEXT UNIQUE,
    -- failed: why (`declined`, `authentication_required`).
    failure        TEXT CHECK (failure IN ('declined', 'authentication_required')),
    leased_until   INTEGER,
    created_at     INTEGER NOT NULL,
    settled_at     INTEGER,
    CHECK ((state = 'failed') = (failure IS NOT NULL))
);
CREATE UNIQUE INDEX topup_attempts_one_in_flight ON topup_attempts (user_id)
    WHERE state = 'pending';
CREATE INDEX topup_attempts_by_month ON topup_attempts (user_id, created_at);

-- Users whose tokens a refund or a dispute is taking back, in the transaction that writes the
-- row and deletes it again before it commits: their crossing starts no top-up (charging the
-- card whose payment was just given back, or disputed, is not what its owner asked for).
CREATE TABLE topup_quiet (
    user_id INTEGER PRIMARY KEY REFERENCES users (id)
);

-- What is available going under the mark of a user whose auto top-up is on starts one, unless
-- one is in flight (or a refund or a dispute took it under).
CREATE TRIGGER auto_topup_crossing AFTER UPDATE OF balance, held ON token_balances
    FOR EACH ROW WHEN NEW.balance - NEW.held < OLD.balance - OLD.held
BEGIN
    INSERT INTO topup_attempts (user_id, product, state, created_at)
        SELECT a.user_id, a.product, 'pending', NEW.updated_at FROM auto_topups a
        WHERE a.user_id = NEW.user_id AND a.state = 'on'
            AND OLD.balance - OLD.held >= a.below AND NEW.balance - NEW.held < a.below
            AND NOT EXISTS (SELECT 1 FROM topup_attempts t
                WHERE t.user_id = NEW.user_id AND t.state = 'pending')
            AND NOT EXISTS (SELECT 1 FROM topup_quiet q WHERE q.user_id = NEW.user_id);
END;

-- The outbox, made again with the top-up kinds and what their events carry.
CREATE TEMP TABLE outbox_events_kept AS SELECT * FROM outbox_events;
CREATE TEMP TABLE outbox_events_counter AS
    SELECT seq FROM sqlite_sequence WHERE name = 'outbox_events';
DROP TRIGGER outbox_ledger_entry;
DROP TRIGGER outbox_balance_crossing;
DROP TABLE outbox_events;
CREATE TABLE outbox_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    kind       TEXT   NOT NULL CHECK (kind IN ('ledger.entry_created', 'balance.low',
                   'balance.depleted', 'grant.expiring', 'grant.expired', 'topup.succeeded',
                   'topup.failed')),
    entry_id   INTEGER REFERENCES token_ledger (id),
    grant_id   INTEGER REFERENCES token_grants (id),
    tokens     INTEGER,
    expires_at INTEGER,
    threshold  INTEGER,
    created_at INTEGER NOT NULL,
    fanned_out INTEGER NOT NULL DEFAULT 0 CHECK (fanned_out IN (0, 1)),
    -- topup.*: the top-up, and why it failed (`declined`, `authentication_required`).
    topup_id   INTEGER REFERENCES topup_attempts (id),
    detail     TEXT
);
INSERT INTO outbox_events (id, user_id, kind, entry_id, grant_id, tokens, expires_at,
        threshold, created_at, fanned_out)
    SELECT id, user_id, kind, entry_id, grant_id, tokens, expires_at, threshold, created_at,
        fanned_out
    FROM outbox_events_kept ORDER BY id;
-- AUTOINCREMENT goes on from where it was: an id is never used twice.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'outbox_events', seq FROM outbox_events_counter
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox_events');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM outbox_events_counter))
    WHERE name = 'outbox_events' AND EXISTS (SELECT 1 FROM outbox_events_counter);
DROP TABLE outbox_events_kept;
DROP TABLE outbox_events_counter;
CREATE INDEX outbox_events_to_fan_out ON outbox_events (id) WHERE fanned_out = 0;

CREATE TRIGGER outbox_ledger_entry AFTER INSERT ON token_ledger
    FOR EACH ROW WHEN EXISTS (SELECT 1 FROM webhook_endpoints WHERE disabled_at IS NULL)
BEGIN
    INSERT INTO outbox_events (user_id, kind, entry_id, created_at)
        VALUES (NEW.user_id, 'ledger.entry_created', NEW.id, NEW.created_at);
END;

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

-- The notices a person is emailed: now top-ups' results too.
CREATE TRIGGER outbox_mail_notice AFTER INSERT ON outbox_events
    FOR EACH ROW WHEN NEW.kind IN ('balance.low', 'grant.expiring', 'topup.succeeded',
        'topup.failed')
BEGIN
    INSERT INTO mail_notices (event_id, user_id, state, next_attempt_at, created_at)
        VALUES (NEW.id, NEW.user_id, 'pending', NEW.created_at, NEW.created_at);
END;
