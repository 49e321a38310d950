-- The money rules of issue 12: ledger sources as rows (a new source is an INSERT, not a table
-- rebuild), the trial allowance's source, refunds and disputes as Stripe last described
-- them, and when subscriptions were read.
-- Kept in step with ../postgres/0003_money_rules.sql.

CREATE TABLE ledger_sources (
    name TEXT PRIMARY KEY
);
INSERT INTO ledger_sources (name) VALUES ('stripe_checkout'), ('stripe_invoice'),
    ('stripe_refund'), ('stripe_dispute'), ('manual'), ('consume'), ('trial');

-- SQLite cannot change a column's CHECK: the ledger is rebuilt with `source` pointing at
-- ledger_sources instead. Its rows are copied as they are (ids included, oldest first, so a
-- reversal's purchase is always there before it), in this migration's transaction; the
-- append-only triggers do not fire for DROP TABLE. The rebuilt table's reversals point at
-- itself, and the rename carries that reference to its new name.
CREATE TABLE token_ledger_rebuilt (
    id                    INTEGER PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users (id),
    delta                 INTEGER NOT NULL CHECK (delta <> 0),
    balance_after         INTEGER NOT NULL,
    source                TEXT    NOT NULL REFERENCES ledger_sources (name),
    reason                TEXT    NOT NULL CHECK (length(reason) > 0),
    idempotency_key       TEXT    NOT NULL UNIQUE,
    stripe_event_id       TEXT,
    stripe_object_id      TEXT,
    stripe_payment_intent TEXT,
    amount_paid_minor     INTEGER CHECK (amount_paid_minor >= 0),
    currency              TEXT,
    actor_id              INTEGER REFERENCES users (id),
    created_at            INTEGER NOT NULL,
    reverses_entry_id     INTEGER REFERENCES token_ledger_rebuilt (id)
);
INSERT INTO token_ledger_rebuilt (id, user_id, delta, balance_after, source, reason,
        idempotency_key, stripe_event_id, stripe_object_id, stripe_payment_intent,
        amount_paid_minor, currency, actor_id, created_at, reverses_entry_id)
    SELECT id, user_id, delta, balance_after, source, reason, idempotency_key, stripe_event_id,
        stripe_object_id, stripe_payment_intent, amount_paid_minor, currency, actor_id,
        created_at, reverses_entry_id
    FROM token_ledger ORDER BY id;
DROP TABLE token_ledger;
ALTER TABLE token_ledger_rebuilt RENAME TO token_ledger;

CREATE INDEX token_ledger_by_user ON token_ledger (user_id, id);
CREATE INDEX token_ledger_by_user_source ON token_ledger (user_id, source, id);
CREATE INDEX token_ledger_by_reversed ON token_ledger (reverses_entry_id)
    WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX token_ledger_by_payment_intent ON token_ledger (stripe_payment_intent)
    WHERE stripe_payment_intent IS NOT NULL;
CREATE INDEX token_ledger_by_stripe_object ON token_ledger (stripe_object_id)
    WHERE stripe_object_id IS NOT NULL;
CREATE TRIGGER token_ledger_no_update BEFORE UPDATE ON token_ledger
BEGIN
    SELECT RAISE(ABORT, 'token_ledger is append-only');
END;
CREATE TRIGGER token_ledger_no_delete BEFORE DELETE ON token_ledger
BEGIN
    SELECT RAISE(ABORT, 'token_ledger is append-only');
END;

-- Every refund of a charge that billing has heard of, with its latest status. A failed or
-- canceled refund stays so: a stale view of Stripe can never bring it back.
CREATE TABLE stripe_refunds (
    refund_id  TEXT    PRIMARY KEY,
    charge_id  TEXT    NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount > 0),
    status     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX stripe_refunds_by_charge ON stripe_refunds (charge_id);

-- A dispute's charge and amount, so that a refund's news and the dispute's are weighed together.
ALTER TABLE stripe_disputes ADD COLUMN charge_id TEXT;
ALTER TABLE stripe_disputes ADD COLUMN amount INTEGER;
CREATE INDEX stripe_disputes_by_charge ON stripe_disputes (charge_id);

-- When a subscription's state was read from Stripe (milliseconds): the later read wins.
ALTER TABLE subscriptions ADD COLUMN stripe_read_at INTEGER NOT NULL DEFAULT 0;

-- Held-back events are found by what they wait for, unfinished ones by the sweep.
CREATE INDEX stripe_events_held ON stripe_events (awaiting)
    WHERE awaiting IS NOT NULL AND processed_at IS NULL;
