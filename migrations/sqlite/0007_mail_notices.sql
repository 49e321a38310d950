-- Email notices (issue 16): a notice is written by the same transaction as the event that
-- calls for one (what is available going under the user's threshold, a grant about to
-- expire), so a change rolled back never mails anyone; the server sends it after commit, at
-- least once. Kept in step with ../postgres/0007_mail_notices.sql.

-- One notice for one event, to the user's address as it is when it is sent. `delivered`: the
-- mail server took it; `failed`: it refused it for good, or kept failing for three days.
-- `leased_until`: a node is sending it.
CREATE TABLE mail_notices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        INTEGER NOT NULL UNIQUE REFERENCES outbox_events (id),
    user_id         INTEGER NOT NULL REFERENCES users (id),
    state           TEXT   NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    settled_at      INTEGER
);
CREATE INDEX mail_notices_due ON mail_notices (next_attempt_at) WHERE state = 'pending';

-- The events a person is told about by email.
CREATE TRIGGER outbox_mail_notice AFTER INSERT ON outbox_events
    FOR EACH ROW WHEN NEW.kind IN ('balance.low', 'grant.expiring')
BEGIN
    INSERT INTO mail_notices (event_id, user_id, state, next_attempt_at, created_at)
        VALUES (NEW.id, NEW.user_id, 'pending', NEW.created_at, NEW.created_at);
END;
