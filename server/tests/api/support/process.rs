//! The server as a real process (the built binary), for tests of several nodes, of crashes and
//! of shutdown: started on a free port, waited for, killed or stopped.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What the processes check Stripe's signatures with.
pub const WEBHOOK_SECRET: &str = "whsec_test_processes_secret";
/// What the processes sign device cookies with: one key for every node, as in production.
const DEVICE_COOKIE_KEY: &str = "test-processes-device-cookie-key-0123456789";

pub struct ServerProcess {
    child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts the server with `vars` on top of a quiet, key-less development setup (webhooks
    /// signed with [`WEBHOOK_SECRET`], no secret made in a data folder).
    pub async fn start(vars: &[(&str, &str)]) -> Self {
        Self::try_start(vars)
            .await
            .unwrap_or_else(|output| panic!("the server did not start:\n{output}"))
    }

    /// Starts the server; `Err` with its output when it exits instead of serving.
    pub async fn try_start(vars: &[(&str, &str)]) -> Result<Self, String> {
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let base = format!("http://{address}");
        let mut env: HashMap<String, String> = HashMap::from([
            ("LEPTOS_SITE_ADDR".into(), address.to_string()),
            ("LEPTOS_OUTPUT_NAME".into(), "billing".into()),
            ("LEPTOS_SITE_ROOT".into(), "target/site".into()),
            ("SITE_URL".into(), base.clone()),
            ("DEMO_ACCOUNTS".into(), "false".into()),
            ("STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
            ("DEVICE_COOKIE_KEY".into(), DEVICE_COOKIE_KEY.into()),
            ("RUST_LOG".into(), "warn".into()),
        ]);
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .envs(&env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(Some(_)) = child.try_wait() {
                let output = child.wait_with_output().expect("its output");
                return Err(format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return Ok(Self { child, base });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        Err("the server did not answer /healthz within 10 s".into())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no flushing; whatever was in flight is cut off.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit; its exit code, or `None` after `patience`.
    pub async fn terminate(mut self, patience: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
