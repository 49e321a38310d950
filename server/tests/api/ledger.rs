//! The ledger as the billing page and a spreadsheet read it: pages, the source filter, CSV.

use billing::domain::{IdempotencyKey, Reason, Tokens};
use billing::ledger::Posting;
use billing::testing::paid_purchase;
use serde_json::Value;

use crate::support::{Browser, TestApp, spawn_app};

/// 25 purchases and, after each fifth, a use of 10 tokens: 30 entries; signed in.
async fn busy_user(app: &TestApp) -> Browser {
    let browser = app.user("ada").await;
    let ada = browser.me();
    for n in 1..=25 {
        paid_purchase(&*app.store, ada.id, 100, &format!("buy-{n}")).await;
        if n % 5 == 0 {
            let reason = if n == 5 {
                // What a spreadsheet would run, and a comma.
                "=HYPERLINK(\"http://evil\"), batch".to_owned()
            } else {
                format!("Usage {n}")
            };
            app.store
                .post(Posting::debit(
                    ada.id,
                    Tokens::new(10).unwrap(),
                    Reason::parse(&reason).unwrap(),
                    IdempotencyKey::parse(&format!("test:use:{n}")).unwrap(),
                ))
                .await
                .unwrap();
        }
    }
    browser
}

async fn page(browser: &Browser, query: &str) -> Value {
    let response = browser.get(&format!("/api/tokens/ledger?{query}")).await;
    assert_eq!(response.status, 200, "{query}");
    response.json()
}

#[tokio::test]
async fn the_ledger_pages_newest_first_and_filters_by_source() {
    let app = spawn_app().await;
    let ada = busy_user(&app).await;

    let ids_of = |page: &Value| -> Vec<i64> {
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let mut pages = Vec::new();
    let mut query = "limit=12".to_owned();
    loop {
        let page = page(&ada, &query).await;
        pages.push(page.clone());
        match page["next_cursor"].as_i64() {
            Some(cursor) => query = format!("limit=12&before={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3, "12 + 12 + 6");
    let ids: Vec<i64> = pages.iter().flat_map(ids_of).collect();
    assert_eq!(ids.len(), 30, "every entry once");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // Back from the last page, newer and newer, to the first.
    assert_eq!(pages[0]["prev_cursor"], Value::Null);
    let back = page(&ada, &format!("limit=12&after={}", pages[2]["prev_cursor"])).await;
    assert_eq!(ids_of(&back), ids_of(&pages[1]));
    let first = page(&ada, &format!("limit=12&after={}", back["prev_cursor"])).await;
    assert_eq!(ids_of(&first), ids_of(&pages[0]));
    assert_eq!(first["prev_cursor"], Value::Null, "nothing newer");

    let usage = page(&ada, "source=consume").await;
    let usage = usage["entries"].as_array().unwrap();
    assert_eq!(usage.len(), 5);
    assert!(usage.iter().all(|e| e["source"] == "consume"));
    let newest = &page(&ada, "limit=1").await["entries"][0];
    assert_eq!(newest["balance_after"], 25 * 100 - 5 * 10);

    let unknown = ada.get("/api/tokens/ledger?source=gift").await;
    assert!((400..500).contains(&unknown.status), "{}", unknown.status);
}

#[tokio::test]
async fn the_ledger_exports_as_csv_with_formulas_defused() {
    let app = spawn_app().await;
    let ada = busy_user(&app).await;

    let response = ada.get("/api/tokens/ledger.csv").await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        response
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    let csv = response.text;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "date,description,source,change,balance_after,amount_paid,reference"
    );
    assert_eq!(
        lines.len(),
        1 + 30,
        "a header and every entry, past one page"
    );
    assert!(
        lines[1].contains(",Usage 25,consume,-10,2450,"),
        "{}",
        lines[1]
    );
    // The file says when in UTC, whatever the page showed in the viewer's zone.
    for line in &lines[1..] {
        let date = line.split(',').next().unwrap();
        let utc = date.len() == 20
            && date.ends_with('Z')
            && date.as_bytes()[10] == b'T'
            && date.as_bytes()[..10].iter().filter(|b| **b == b'-').count() == 2;
        assert!(utc, "not an RFC 3339 UTC time: {line}");
    }
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://evil\"\"), batch\",consume,-10,"),
        "the formula is quoted and defused:\n{csv}"
    );

    let purchases = ada
        .get("/api/tokens/ledger.csv?source=stripe_checkout")
        .await
        .text;
    assert_eq!(purchases.lines().count(), 1 + 25);
    assert!(
        purchases
            .lines()
            .skip(1)
            .all(|l| l.contains(",stripe_checkout,100,"))
    );

    // Someone else's browser gets nothing.
    let anonymous = app.browser().get("/api/tokens/ledger.csv").await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn the_billing_page_links_older_and_newer_pages_without_javascript() {
    let app = spawn_app().await;
    let ada = busy_user(&app).await;
    let html = async |path: String| {
        let response = ada.get(&path).await;
        assert_eq!(response.status, 200);
        response.text
    };
    let first_page = page(&ada, "limit=20").await;
    let oldest_shown = first_page["next_cursor"].as_i64().unwrap();

    // The newest page: only an older one.
    let newest = html("/app/billing".into()).await;
    assert!(newest.contains(&format!("href=\"/app/billing?before={oldest_shown}\"")));
    assert!(
        !newest.contains("Newer"),
        "nothing is newer than the newest page"
    );

    // The second page: newer (back to where it started) and the newest, nothing older.
    let second = html(format!("/app/billing?before={oldest_shown}")).await;
    let second_page = page(&ada, &format!("before={oldest_shown}")).await;
    let newest_shown = second_page["prev_cursor"].as_i64().unwrap();
    assert!(second.contains(&format!("href=\"/app/billing?after={newest_shown}\"")));
    assert!(second.contains("« Newest") && second.contains("← Newer"));
    assert!(!second.contains("Older"), "30 entries: two pages");
}
