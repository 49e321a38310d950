//! The signed-in user's tokens outside server functions: a live stream of the balance
//! (server-sent events), the ledger as CSV, and a month's statement as CSV.

use std::convert::Infallible;
use std::time::Duration;

use app::api::guard::{SessionError, session_user};
use app::error::{AppError, ErrorCode};
use app::state::AppState;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use billing::domain::{LedgerEntry, Month, Source, User};
use billing::store::LedgerQuery;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use crate::error::ApiError;
use crate::live_balances::{LiveBalances, Snapshot, Subscription};
use crate::shutdown::Shutdown;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens/stream", get(stream))
        .route("/api/tokens/ledger.csv", get(export_csv))
        .route("/api/tokens/statement.csv", get(statement_csv))
}

async fn signed_in(state: &AppState, session: &Session) -> Result<User, ApiError> {
    session_user(state, session)
        .await
        .map_err(session_failure)?
        .ok_or_else(|| ApiError::from(AppError::Unauthorized))
}

/// The session or the user store failed: answered 500, the real cause logged.
fn session_failure(error: SessionError) -> ApiError {
    ApiError::internal("reading the signed-in user failed", error)
}

/// `GET /api/tokens/stream`: a `balance` event now and whenever the balance, what holds
/// reserve of it, or the ledger changes: `{"balance": 5000, "held": 1200, "latest_entry": 12}`.
/// The node's one watch on the database tells every stream (see [`LiveBalances`]); a user
/// may have [`STREAMS_PER_USER`](crate::live_balances::STREAMS_PER_USER) open on one node, and one more is refused (429).
pub async fn stream(
    State(state): State<AppState>,
    Extension(shutdown): Extension<Shutdown>,
    Extension(live): Extension<LiveBalances>,
    session: Session,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let user = signed_in(&state, &session).await?.id;
    let subscription = live.subscribe(user).map_err(|too_many| {
        ApiError::new(
            ErrorCode::RateLimited,
            format!("{too_many}: close one to open another."),
        )
    })?;
    let stream = Opened {
        subscription,
        stopping: shutdown.watch(),
        sent: None,
    };
    let changes = futures_util::stream::unfold(stream, |mut stream| async move {
        let now = stream.next_change().await?;
        stream.sent = Some(now);
        let event = Event::default().event("balance").data(
            json!({
                "balance": now.balance,
                "held": now.held,
                "latest_entry": now.latest_entry,
            })
            .to_string(),
        );
        Some((Ok(event), stream))
    });
    Ok(Sse::new(changes).keep_alive(KeepAlive::default()))
}

/// How long a stream whose first read failed waits to read again (the database was away).
const FIRST_READ_RETRY: Duration = Duration::from_secs(1);

/// An open balance stream.
struct Opened {
    subscription: Subscription,
    stopping: tokio::sync::watch::Receiver<bool>,
    /// What it sent last; `None` before the first event.
    sent: Option<Snapshot>,
}

impl Opened {
    /// The next snapshot to send: the balance now, first, then each change the node's watch
    /// tells of; `None` when the server is stopping.
    async fn next_change(&mut self) -> Option<Snapshot> {
        loop {
            if *self.stopping.borrow() {
                return None;
            }
            if self.sent.is_none() {
                match self.subscription.first().await {
                    Ok(now) => return Some(now),
                    Err(error) => tracing::warn!(%error, "reading a balance for the stream failed"),
                }
            }
            tokio::select! {
                changed = self.subscription.news.changed(), if self.sent.is_some() => {
                    if changed.is_err() {
                        return None;
                    }
                    let now = *self.subscription.news.borrow_and_update();
                    if let Some(now) = now.filter(|now| Some(*now) != self.sent) {
                        return Some(now);
                    }
                }
                () = tokio::time::sleep(FIRST_READ_RETRY), if self.sent.is_none() => {}
                _ = self.stopping.changed() => return None,
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ExportQuery {
    source: Option<String>,
}

/// `GET /api/tokens/ledger.csv`: the whole ledger (or one source of it), oldest last.
pub async fn export_csv(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    let user = signed_in(&state, &session).await?;
    let source = match query.source.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => Some(Source::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))?),
        None => None,
    };
    let mut csv =
        String::from("date,description,source,change,balance_after,amount_paid,reference\n");
    let mut page = LedgerQuery {
        source,
        ..LedgerQuery::first(LedgerQuery::MAX_LIMIT)
    };
    loop {
        let entries = state
            .store
            .ledger_page(user.id, &page)
            .await
            .map_err(|e| ApiError::unavailable("exporting a ledger failed", &e))?;
        for entry in &entries.entries {
            csv.push_str(&row(entry));
        }
        match entries.next_cursor {
            Some(cursor) => page.before = Some(cursor),
            None => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"promptbloom-ledger.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct StatementQuery {
    month: String,
}

/// `GET /api/tokens/statement.csv?month=2026-11`: the month's totals, then its entries.
pub async fn statement_csv(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<StatementQuery>,
) -> Result<Response, ApiError> {
    let user = signed_in(&state, &session).await?;
    let month = Month::parse(&query.month).map_err(|e| ApiError::invalid(e.to_string()))?;
    let statement = state
        .store
        .statement(user.id, month)
        .await
        .map_err(|e| ApiError::unavailable("reading a statement failed", &e))?;
    let mut csv = format!(
        "month,opening,credits,reversals,usage,expiries,closing\n{},{},{},{},{},{},{}\n\n",
        statement.month,
        statement.opening,
        statement.credits,
        statement.reversals,
        statement.usage,
        statement.expiries,
        statement.closing
    );
    csv.push_str("date,description,source,change,balance_after,amount_paid,reference\n");
    for entry in &statement.entries {
        csv.push_str(&row(entry));
    }
    let disposition = format!("attachment; filename=\"promptbloom-statement-{month}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

fn row(entry: &LedgerEntry) -> String {
    format!(
        "{},{},{},{},{},{},{}\n",
        entry.created_at.rfc3339(),
        text_field(&entry.reason),
        entry.source.as_str(),
        entry.delta.get(),
        entry.balance_after.get(),
        entry
            .amount_paid
            .map(|m| text_field(&m.to_string()))
            .unwrap_or_default(),
        text_field(entry.stripe_object_id.as_deref().unwrap_or_default()),
    )
}

/// Quotes a text field, and defuses text a spreadsheet would run as a formula.
fn text_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) || value.starts_with('\'') {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use billing::store::StoreError;

    use super::{SessionError, session_failure, text_field};

    #[test]
    fn a_failed_session_lookup_is_logged_with_its_real_cause() {
        let error = session_failure(SessionError::Store(StoreError::Contended));
        assert_eq!(error.code(), app::error::ErrorCode::Internal);
        let cause = error.cause().expect("an internal failure keeps its cause");
        assert_eq!(
            cause.to_string(),
            "reading the signed-in user failed: loading the session's user failed: \
             the balance kept changing; try again"
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(text_field("Medium pack"), "Medium pack");
        assert_eq!(text_field("a, b"), "\"a, b\"");
        assert_eq!(text_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            text_field("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(text_field("@SUM(A1)"), "\"'@SUM(A1)\"");
    }
}
