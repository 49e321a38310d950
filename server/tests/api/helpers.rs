//! `spawn_app`: a fresh server with its own data folder, and a client that keeps cookies.

use std::collections::HashMap;

use billing::config::Config;
use leptos::prelude::LeptosOptions;
use server::startup::Application;
use tempfile::TempDir;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _data_dir: TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("the request is sent")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Spawns the app with settings on top of the embedded default.
pub async fn spawn_app_with(vars: &[(&str, &str)]) -> TestApp {
    let data_dir = tempfile::tempdir().expect("a temporary folder");
    let mut settings: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    settings
        .entry("DATA_DIR".into())
        .or_insert_with(|| data_dir.path().display().to_string());
    let config = Config::from_lookup(|name| settings.get(name).cloned()).expect("valid settings");
    let leptos_options = LeptosOptions::builder()
        .output_name("billing")
        .site_root("target/site")
        .site_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build();

    let app = Application::build(config, leptos_options)
        .await
        .expect("the app starts");
    let address = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    TestApp {
        address,
        client,
        _data_dir: data_dir,
    }
}
