-- Stripe fulfilment: reversals point at the purchase they reverse; the inbox can hold an event
-- back until the purchase it refers to arrives; disputes remember how they ended.
-- Kept in step with ../postgres/0002_stripe.sql.

ALTER TABLE token_ledger ADD COLUMN reverses_entry_id INTEGER REFERENCES token_ledger (id);
CREATE INDEX token_ledger_by_reversed ON token_ledger (reverses_entry_id)
    WHERE reverses_entry_id IS NOT NULL;
CREATE INDEX token_ledger_by_payment_intent ON token_ledger (stripe_payment_intent)
    WHERE stripe_payment_intent IS NOT NULL;
CREATE INDEX token_ledger_by_stripe_object ON token_ledger (stripe_object_id)
    WHERE stripe_object_id IS NOT NULL;

-- What a held-back event waits for (`pi:...` or `invoice:...`).
ALTER TABLE stripe_events ADD COLUMN awaiting TEXT;
CREATE INDEX stripe_events_awaiting ON stripe_events (awaiting) WHERE awaiting IS NOT NULL;

CREATE TABLE stripe_disputes (
    dispute_id TEXT    PRIMARY KEY,
    status     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);
