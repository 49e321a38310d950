-- Live balances (issue 17): every change to a balance, or to what holds reserve of it, leaves
-- the user's id here, in the change's own transaction, so that the node's one watcher reads
-- what changed since it last looked (one small query, whatever the number of open streams)
-- and tells the streams. The watcher forgets rows older than a minute.

CREATE TABLE balance_changes (
    seq INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    -- Unix milliseconds, by the database's clock: only for forgetting old rows.
    changed_at INTEGER NOT NULL
);

CREATE TRIGGER announce_balance_change AFTER UPDATE OF balance, held ON token_balances
    WHEN OLD.balance IS NOT NEW.balance OR OLD.held IS NOT NEW.held
BEGIN
    INSERT INTO balance_changes (user_id, changed_at)
    VALUES (NEW.user_id, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;
