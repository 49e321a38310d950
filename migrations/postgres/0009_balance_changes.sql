-- Live balances (issue 17): every change to a balance, or to what holds reserve of it, is
-- announced on the channel `token_balances` with the user's id, so that each node listens
-- once (LISTEN) and tells its open balance streams, instead of every stream asking the
-- database every second. PostgreSQL delivers a notification only when its transaction
-- commits, and one per user however often the transaction changed that user's row.

CREATE FUNCTION announce_balance_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('token_balances', NEW.user_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER announce_balance_change AFTER UPDATE OF balance, held ON token_balances
    FOR EACH ROW
    WHEN (OLD.balance IS DISTINCT FROM NEW.balance OR OLD.held IS DISTINCT FROM NEW.held)
    EXECUTE FUNCTION announce_balance_change();
