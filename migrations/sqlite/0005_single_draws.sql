-- A spend that one grant covers (most of them) names that grant on its own ledger row instead
-- of a `token_draws` row, and the database takes the tokens off the grant in the same
-- statement: one write fewer on the path every consume takes. Spends from several grants keep
-- writing `token_draws`; an entry has one or the other, never both. Kept in step with
-- ../postgres/0005_single_draws.sql.

ALTER TABLE token_ledger ADD COLUMN drawn_from INTEGER REFERENCES token_grants (id);

CREATE TRIGGER token_ledger_draws_its_grant AFTER INSERT ON token_ledger
    FOR EACH ROW WHEN NEW.drawn_from IS NOT NULL
BEGIN
    UPDATE token_grants SET remaining = remaining + NEW.delta WHERE id = NEW.drawn_from;
END;
