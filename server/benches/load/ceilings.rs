//! The independent ceilings: the consume transaction run by tools that are not this project,
//! pgbench on PostgreSQL and the sqlite3 shell on SQLite, against the benchmark's own database
//! in the same run, so that the app's rate can be read as a share of what the database itself
//! does with that transaction.

use std::fmt::Write as _;
use std::ops::RangeInclusive;
use std::process::{Command, Stdio};
use std::time::Instant;

use billing::domain::Timestamp;

/// What a tool did with `transactions` consume transactions.
pub struct Ceiling {
    pub tool: &'static str,
    pub per_second: f64,
    pub transactions: usize,
    /// What else the tool said (pgbench's average latency).
    pub detail: String,
}

/// `statement` with `$1`, `$2`, ... replaced by `values` in order.
fn with_values(statement: &str, values: &[&str]) -> String {
    // Highest first, so that `$1` never eats the start of `$10`.
    values
        .iter()
        .enumerate()
        .rev()
        .fold(statement.to_owned(), |sql, (i, value)| {
            sql.replace(&format!("${}", i + 1), value)
        })
}

/// pgbench, `clients` connections, prepared statements, `transactions` in all over `users`
/// (a random one each time), each the two statements in one transaction.
pub fn pgbench(
    url: &str,
    users: RangeInclusive<i64>,
    clients: usize,
    transactions: usize,
    statements: (&str, &str),
) -> Result<Ceiling, String> {
    let (update, insert) = statements;
    let now = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
    let key = "('pgbench-' || :client_id || '-' || :r)";
    let script = format!(
        "\\set u random({lo}, {hi})\n\
         \\set r random(1, 9000000000000000000)\n\
         BEGIN;\n\
         {update} AS after \\gset\n\
         {insert};\n\
         END;\n",
        lo = users.start(),
        hi = users.end(),
        update = with_values(update, &[":u", now, key]),
        insert = with_values(insert, &[":u", ":after", key, now]),
    );
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    let per_client = transactions.div_ceil(clients);
    let output = Command::new("pgbench")
        .args(["--no-vacuum", "--protocol=prepared", "--jobs=2"])
        .arg(format!("--client={clients}"))
        .arg(format!("--transactions={per_client}"))
        .arg(format!("--file={}", file.path().display()))
        .arg(url)
        .output()
        .map_err(|e| format!("pgbench did not run (scripts/bootstrap installs it): {e}"))?;
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {said}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let figure = |prefix: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
            .ok_or_else(|| format!("pgbench said no `{prefix}`: {said}"))
    };
    let per_second: f64 = figure("tps = ")?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("pgbench's tps is not a number: {said}"))?;
    // "20000/20000": what was done of what was asked.
    let processed = figure("number of transactions actually processed: ")?;
    let (done, asked) = processed
        .split_once('/')
        .ok_or_else(|| format!("pgbench's count is unreadable: {processed}"))?;
    if done != asked {
        return Err(format!("pgbench processed {processed} transactions"));
    }
    Ok(Ceiling {
        tool: "pgbench",
        per_second,
        transactions: done.parse().map_err(|_| processed.to_owned())?,
        detail: format!("latency average {}", figure("latency average = ")?),
    })
}

/// The sqlite3 shell, one connection (WAL, synchronous=NORMAL), `transactions` in a row over
/// `users` in turn, each the two statements in `BEGIN IMMEDIATE ... COMMIT`; the shell prints
/// nothing, so the balance after is read in the insert itself.
pub fn sqlite3(
    path: &std::path::Path,
    users: &[i64],
    transactions: usize,
    tag: &str,
    statements: (&str, &str),
) -> Result<Ceiling, String> {
    let (update, insert) = statements;
    let update = update.replace(" RETURNING balance", "");
    let insert = insert.replace(" RETURNING id", "");
    let now = Timestamp::now().as_millis().to_string();
    let mut script = String::from(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;\n",
    );
    for i in 0..transactions {
        let user = users[i % users.len()].to_string();
        let key = format!("'sqlite3-{tag}-{i}'");
        let after = format!("(SELECT balance FROM token_balances WHERE user_id = {user})");
        writeln!(
            script,
            "BEGIN IMMEDIATE; {}; {}; COMMIT;",
            with_values(&update, &[&user, &now, &key]),
            with_values(&insert, &[&user, &after, &key, &now]),
        )
        .expect("writing to a string");
    }
    let file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    std::fs::write(file.path(), script).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let output = Command::new("sqlite3")
        .arg("-bail")
        .arg(path)
        .stdin(Stdio::from(
            std::fs::File::open(file.path()).map_err(|e| e.to_string())?,
        ))
        .output()
        .map_err(|e| format!("sqlite3 did not run (scripts/bootstrap installs it): {e}"))?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(format!(
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(Ceiling {
        tool: "sqlite3",
        per_second: transactions as f64 / elapsed.as_secs_f64(),
        transactions,
        detail: "one connection".to_owned(),
    })
}
