//! The Prometheus page (`/metrics`) as a test reads it: the value of a series.

use super::requests::Browser;

/// A sample: its name, its labels, its value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`.
pub struct Metrics {
    samples: Vec<Sample>,
}

impl Metrics {
    /// Scrapes the server `browser` is at (development: no token needed).
    pub async fn scrape(browser: &Browser) -> Self {
        let page = browser.get("/metrics").await;
        assert_eq!(page.status, 200, "{}", page.text);
        Self::parse(&page.text)
    }

    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample and its value");
                let value: f64 = value.parse().expect("a number");
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                (name.to_owned(), labels_of(labels), value)
            })
            .collect();
        Self { samples }
    }

    /// The sum of the samples of `name` that carry every one of `labels` (0 when there is
    /// none: a counter never counted is not on the page).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(sample, have, _)| {
                sample == name
                    && labels
                        .iter()
                        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }
}

/// `a="x",b="y"` into pairs (the servers' label values hold no quotes or commas).
fn labels_of(text: &str) -> Vec<(String, String)> {
    text.split("\",")
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some((key.to_owned(), value.trim_matches('"').to_owned()))
        })
        .collect()
}
