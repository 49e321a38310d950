//! Faults: the server killed while applying webhooks, the database unreachable, a disk that
//! cannot be written. Money is never half-applied, and Stripe's retries finish the job.

use std::sync::Arc;
use std::time::Duration;

use billing::config::{DatabaseTarget, Secret};
use billing::domain::UserId;
use billing::store::{LedgerQuery, Store};
use billing::testing::{FakeUser, StripeEvent, empty_postgres_url};

use crate::support::process::sqlite_store;
use crate::support::{ServerProcess, Webhooks, eventually_within};

/// The `n`th monthly invoice of `user`'s plan, paid.
fn invoice_paid(n: usize, user: UserId) -> StripeEvent {
    StripeEvent::invoice_paid(user)
        .id(&format!("evt_fault_{n}"))
        .object_id(&format!("in_fault_{n}"))
        .set("/data/object/billing_reason", "subscription_cycle")
}

/// Delivers `event`; its status, or `None` when no answer came (the server is gone).
async fn deliver(webhooks: &Webhooks, event: &StripeEvent) -> Option<u16> {
    webhooks.try_send(event).await.map(|answer| answer.status)
}

async fn user(store: &dyn Store) -> UserId {
    FakeUser::new("ada@example.com").create(store).await.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_while_applying_webhooks_then_retried_every_invoice_credits_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let store = sqlite_store(dir.path()).await;
    let ada = user(&*store).await;
    let events: Arc<Vec<StripeEvent>> = Arc::new((0..150).map(|n| invoice_paid(n, ada)).collect());

    // Deliveries stream in, eight at a time; the process is killed part way through.
    let server = ServerProcess::start(&[("DATA_DIR", &data)]).await;
    let webhooks = server.webhooks();
    let flood: Vec<_> = (0..8)
        .map(|lane| {
            let (webhooks, events) = (webhooks.clone(), events.clone());
            tokio::spawn(async move {
                for event in events.iter().skip(lane).step_by(8) {
                    if deliver(&webhooks, event).await.is_none() {
                        break; // the server is gone
                    }
                }
            })
        })
        .collect();
    // Killed once some invoices are credited, while the rest are still arriving (a slow or
    // busy machine only makes the wait longer).
    eventually_within(
        "ten invoices credited",
        Duration::from_secs(30),
        Duration::from_millis(5),
        async || store.balance(ada).await.unwrap().get() >= 10 * 6_000,
    )
    .await;
    server.kill();
    for lane in flood {
        lane.await.unwrap();
    }
    let before = store.balance(ada).await.unwrap().get();
    assert!(
        (10 * 6_000..150 * 6_000).contains(&before),
        "the kill came part way through ({before})"
    );
    assert!(
        store.audit_balances().await.unwrap().is_empty(),
        "nothing half-applied"
    );

    // Restarted on the same file; Stripe retries every delivery.
    let server = ServerProcess::start(&[("DATA_DIR", &data)]).await;
    let webhooks = server.webhooks();
    for event in events.iter() {
        assert_eq!(deliver(&webhooks, event).await, Some(200));
    }
    assert_eq!(store.balance(ada).await.unwrap().get(), 150 * 6_000);
    let mut entries = 0;
    let mut query = LedgerQuery::first(100);
    loop {
        let page = store.ledger_page(ada, &query).await.unwrap();
        entries += page.entries.len();
        match page.next_cursor {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(entries, 150, "one entry per invoice");
    assert!(store.inbox_unfinished().await.unwrap().is_empty());
    assert!(store.audit_balances().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_lets_the_server_finish_and_exit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = ServerProcess::start(&[("DATA_DIR", &data)]).await;
    assert_eq!(server.terminate(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_a_webhook_in_flight_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let store = sqlite_store(dir.path()).await;
    let ada = user(&*store).await;
    // Logs as JSON, with each request's start: the test watches for what it waits on.
    let server = ServerProcess::start(&[
        ("DATA_DIR", &data),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,server=info,tower_http=debug"),
    ])
    .await;
    let output = server.output();

    // Another process holds SQLite's write lock, so the delivery waits inside the server...
    use sqlx::Connection;
    let mut blocker = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("billing.sqlite3").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let webhooks = server.webhooks();
    let delivery = tokio::spawn(async move { deliver(&webhooks, &invoice_paid(1, ada)).await });
    eventually_within(
        "the delivery to reach the server",
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || output.logged("started processing request", Some("/api/webhooks/stripe")),
    )
    .await;

    // ...when the server is told to stop. It must not exit with the delivery half-done.
    let stopping = tokio::spawn(server.terminate(Duration::from_secs(20)));
    eventually_within(
        "the server to hear SIGTERM",
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || output.logged("shutting down", None),
    )
    .await;
    assert!(!stopping.is_finished(), "exited with a webhook in flight");
    assert!(!delivery.is_finished(), "the delivery waits for the lock");
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    assert_eq!(
        delivery.await.unwrap(),
        Some(200),
        "the delivery was answered"
    );
    assert_eq!(
        stopping.await.unwrap(),
        Some(0),
        "then the server exited cleanly"
    );
    assert_eq!(store.balance(ada).await.unwrap().get(), 6_000);
    assert!(store.inbox_unfinished().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_database_answers_503_so_stripe_retries_and_nothing_is_half_written() {
    let Some(url) = empty_postgres_url().await else {
        return;
    };
    let name = url.rsplit('/').next().unwrap().to_owned();
    let admin_url = std::env::var("TEST_POSTGRES_URL").unwrap();
    let store: Arc<dyn Store> = Arc::new(
        billing::store::connect(&DatabaseTarget::Postgres {
            url: Secret::new(url.clone()),
        })
        .await
        .unwrap(),
    );
    let ada = user(&*store).await;
    let server = ServerProcess::start(&[("DATABASE_URL", &url)]).await;
    let webhooks = server.webhooks();
    let event = invoice_paid(1, ada);

    // The database goes away: no new connections, existing ones cut.
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    for statement in [
        format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let status = deliver(&webhooks, &event).await;
    assert_eq!(status, Some(503), "unavailable: Stripe retries");
    let ready = server.browser().get("/readyz").await;
    assert_eq!(ready.status, 503);

    // It comes back: nothing was half-written, and Stripe's retry credits once.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(
        billing::store::connect(&DatabaseTarget::Postgres {
            url: Secret::new(url.clone()),
        })
        .await
        .unwrap(),
    );
    assert!(store.inbox_event("evt_fault_1").await.unwrap().is_none());
    assert_eq!(store.balance(ada).await.unwrap().get(), 0);
    let mut retried = None;
    for _ in 0..50 {
        retried = deliver(&webhooks, &event).await;
        if retried == Some(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(retried, Some(200));
    assert_eq!(store.balance(ada).await.unwrap().get(), 6_000);
    assert_eq!(deliver(&webhooks, &event).await, Some(200));
    assert_eq!(store.balance(ada).await.unwrap().get(), 6_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_folder_that_cannot_be_written_is_a_clear_startup_error() {
    // A path under a regular file can never be created, whoever runs the server.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let data = file.join("data").display().to_string();
    let output = ServerProcess::try_start(&[("DATA_DIR", &data)])
        .await
        .err()
        .unwrap();
    assert!(output.contains("cannot create the data folder"), "{output}");
}

/// A small tmpfs of the test's own, unmounted when dropped: at the test's end, and when it
/// panics midway.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a server killed a moment ago): detach it now, freed once unused.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.path())
                .status();
        }
    }
}

/// A small tmpfs to fill up; `None` (the test skips, loudly) where mounting is not allowed,
/// except in CI, where a skip would pass for a test that ran.
fn small_disk(size: &str) -> Option<SmallDisk> {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to mount a tmpfs for the disk tests (run them as root)"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return None;
    }
    Some(SmallDisk(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_a_clear_startup_error() {
    // Too small for the schema: SQLite reports the disk full while migrating.
    let Some(disk) = small_disk("48k") else {
        return;
    };
    let data = disk.path().display().to_string();
    let output = ServerProcess::try_start(&[("DATA_DIR", &data)])
        .await
        .err()
        .expect("the server must not start on a full disk");
    assert!(output.contains("cannot open the database"), "{output}");
    assert!(output.to_lowercase().contains("full"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_only_disk_is_a_clear_startup_error() {
    let Some(disk) = small_disk("4m") else {
        return;
    };
    let data = disk.path().display().to_string();
    // A database made and closed cleanly, on a disk then made read-only.
    let server = ServerProcess::start(&[("DATA_DIR", &data)]).await;
    assert_eq!(server.terminate(Duration::from_secs(10)).await, Some(0));
    let remounted = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(disk.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(remounted, "a tmpfs we mounted can be remounted read-only");
    let output = ServerProcess::try_start(&[("DATA_DIR", &data)])
        .await
        .err()
        .expect("the server must not start on a read-only disk");
    assert!(output.contains("cannot open the database"), "{output}");
    assert!(
        output.contains("billing.sqlite3 cannot be written"),
        "{output}"
    );
    assert!(output.contains("Read-only file system"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_that_is_not_a_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("billing.sqlite3"), vec![0x42; 8192]).unwrap();
    let data = dir.path().display().to_string();
    let output = ServerProcess::try_start(&[("DATA_DIR", &data)])
        .await
        .err()
        .unwrap();
    assert!(output.contains("cannot open the database"), "{output}");
}

#[test]
fn a_disk_test_that_fails_midway_still_unmounts_its_disk() {
    let Some(disk) = small_disk("1m") else {
        return;
    };
    let path = disk.path().display().to_string();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|line| line.split_whitespace().nth(1) == Some(path.as_str()))
    };
    assert!(mounted(), "{path} is mounted");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _disk = disk;
        panic!("a disk test failing midway (on purpose)");
    }));
    assert!(failed.is_err());
    assert!(!mounted(), "{path} is still mounted");
}
