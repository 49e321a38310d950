//! Real database failures on demand, for tests.

use std::sync::Arc;

use crate::store::{Backend, SqlStore, Store};

/// Real database failures on demand. A trigger fails the statement that keeps a chosen Stripe
/// event done (its insert into the inbox, or the update of a row kept before), after the event's changes were made in the same transaction, so the database
/// rolls all of it back: what a dropped connection, a lock timeout or a busy SQLite does to a
/// transaction in the middle of applying an event.
pub struct Faults {
    store: Arc<SqlStore>,
}

impl Faults {
    pub async fn install(store: &Arc<SqlStore>) -> Self {
        let trigger = match store.backend() {
            Backend::Sqlite => {
                "CREATE TABLE injected_faults (event_id TEXT PRIMARY KEY);
                 CREATE TRIGGER injected_fault BEFORE UPDATE OF processed_at ON stripe_events
                 WHEN NEW.processed_at IS NOT NULL
                     AND EXISTS (SELECT 1 FROM injected_faults WHERE event_id = NEW.id)
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END;
                 CREATE TRIGGER injected_fault_new BEFORE INSERT ON stripe_events
                 WHEN NEW.processed_at IS NOT NULL
                     AND EXISTS (SELECT 1 FROM injected_faults WHERE event_id = NEW.id)
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END;"
            }
            Backend::Postgres => {
                "CREATE TABLE injected_faults (event_id TEXT PRIMARY KEY);
                 CREATE FUNCTION injected_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.processed_at IS NOT NULL
                         AND EXISTS (SELECT 1 FROM injected_faults WHERE event_id = NEW.id) THEN
                         RAISE EXCEPTION 'injected fault';
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER injected_fault BEFORE INSERT OR UPDATE ON stripe_events
                     FOR EACH ROW EXECUTE FUNCTION injected_fault();"
            }
        };
        sqlx::raw_sql(trigger)
            .execute(store.pool())
            .await
            .expect("the fault trigger installs");
        Self {
            store: store.clone(),
        }
    }

    /// Every transaction that would finish `event` fails from now on.
    pub async fn fail(&self, event: &str) {
        sqlx::query("INSERT INTO injected_faults (event_id) VALUES ($1)")
            .bind(event)
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    /// The database is well again.
    pub async fn heal(&self) {
        sqlx::query("DELETE FROM injected_faults")
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}
