-- The money rules of issue 12: ledger sources as rows (a new source is an INSERT), the trial
-- allowance's source, refunds and disputes as Stripe last described them, and when
-- subscriptions were read.
-- Kept in step with ../sqlite/0003_money_rules.sql.

CREATE TABLE ledger_sources (
    name TEXT PRIMARY KEY
);
INSERT INTO ledger_sources (name) VALUES ('stripe_checkout'), ('stripe_invoice'),
    ('stripe_refund'), ('stripe_dispute'), ('manual'), ('consume'), ('trial');

ALTER TABLE token_ledger DROP CONSTRAINT token_ledger_source_check;
ALTER TABLE token_ledger ADD CONSTRAINT token_ledger_source_fkey
    FOREIGN KEY (source) REFERENCES ledger_sources (name);

-- Every refund of a charge that billing has heard of, with its latest status. A failed or
-- canceled refund stays so: a stale view of Stripe can never bring it back.
CREATE TABLE stripe_refunds (
    refund_id  TEXT   PRIMARY KEY,
    charge_id  TEXT   NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount > 0),
    status     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX stripe_refunds_by_charge ON stripe_refunds (charge_id);

-- A dispute's charge and amount, so that a refund's news and the dispute's are weighed together.
ALTER TABLE stripe_disputes ADD COLUMN charge_id TEXT;
ALTER TABLE stripe_disputes ADD COLUMN amount BIGINT;
CREATE INDEX stripe_disputes_by_charge ON stripe_disputes (charge_id);

-- When a subscription's state was read from Stripe (milliseconds): the later read wins.
ALTER TABLE subscriptions ADD COLUMN stripe_read_at BIGINT NOT NULL DEFAULT 0;

-- Held-back events are found by what they wait for, unfinished ones by the sweep.
CREATE INDEX stripe_events_held ON stripe_events (awaiting)
    WHERE awaiting IS NOT NULL AND processed_at IS NULL;
