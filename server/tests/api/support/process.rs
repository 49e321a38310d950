//! The server as a real process (the built binary), for tests of several nodes, of crashes and
//! of shutdown, and for the benchmark: started on port 0 (the server says on its standard
//! output where it listens, and nothing else binds the port), waited for until it answers,
//! killed or stopped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// What the processes check Stripe's signatures with.
pub const WEBHOOK_SECRET: &str = "whsec_test_processes_secret";
/// What the processes sign device cookies with: one key for every node, as in production.
const DEVICE_COOKIE_KEY: &str = "test-processes-device-cookie-key-0123456789";
/// What the server prints once it listens (`server/src/main.rs`).
const LISTENING: &str = "listening on ";
/// How much of a server's output is kept for a failed start's message.
const KEPT_OUTPUT: usize = 1 << 20;
/// How long a server may take to migrate its database and listen.
const START_PATIENCE: Duration = Duration::from_secs(20);

pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:port`, where it listens.
    pub base: String,
    /// What it wrote (the start of it), for a failed start's message.
    output: Arc<Mutex<String>>,
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
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Reading the child's output blocks: on a thread of its own, off the test's runtime.
        let mut server = tokio::task::spawn_blocking(move || Self::spawn(&vars))
            .await
            .expect("the start-up thread finishes")?;
        // Listening is not serving yet: only once it answers does it also handle SIGTERM
        // (a signal before that would kill it the default way).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a client");
        let deadline = tokio::time::Instant::now() + START_PATIENCE;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                let output = server.output.lock().unwrap().clone();
                return Err(format!(
                    "the server exited ({status}) once listening:\n{output}"
                ));
            }
            if client.get(server.url("/healthz")).send().await.is_ok() {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let output = server.output.lock().unwrap().clone();
        Err(format!(
            "the server listened at {} but did not answer within {START_PATIENCE:?}:\n{output}",
            server.base
        ))
    }

    fn spawn(vars: &[(String, String)]) -> Result<Self, String> {
        let mut env: HashMap<String, String> = HashMap::from([
            // Port 0: the system picks a free port when the server binds.
            ("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into()),
            ("LEPTOS_OUTPUT_NAME".into(), "billing".into()),
            ("LEPTOS_SITE_ROOT".into(), "target/site".into()),
            ("DEMO_ACCOUNTS".into(), "false".into()),
            ("STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
            ("DEVICE_COOKIE_KEY".into(), DEVICE_COOKIE_KEY.into()),
            ("RUST_LOG".into(), "warn".into()),
        ]);
        env.extend(vars.iter().cloned());
        let mut child = Command::new(env!("CARGO_BIN_EXE_server"))
            .env_clear()
            .envs(&env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");

        // Both streams are read to their end (a full pipe would stop the server), kept for a
        // failure's message; the first `listening on` line says where the server is.
        let output = Arc::new(Mutex::new(String::new()));
        let (listening, heard) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("a piped stdout");
        let stderr = child.stderr.take().expect("a piped stderr");
        let readers = [
            collect(stdout, output.clone(), Some(listening)),
            collect(stderr, output.clone(), None),
        ];
        let failed = |mut child: Child, why: &str| {
            let _ = child.kill();
            let _ = child.wait();
            for reader in readers {
                let _ = reader.join();
            }
            Err(format!("{why}{}", output.lock().unwrap()))
        };
        match heard.recv_timeout(START_PATIENCE) {
            Ok(base) => Ok(Self {
                child,
                base,
                output: output.clone(),
            }),
            // Its standard output closed without the line: the server exited.
            Err(mpsc::RecvTimeoutError::Disconnected) => failed(child, ""),
            Err(mpsc::RecvTimeoutError::Timeout) => failed(
                child,
                &format!("the server did not listen within {START_PATIENCE:?}:\n"),
            ),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What it writes, as it writes it (the start of it: up to a megabyte).
    pub fn output(&self) -> Output {
        Output(self.output.clone())
    }

    /// The process id (the benchmark reads its memory from `/proc`).
    #[allow(dead_code)]
    pub fn pid(&self) -> u32 {
        self.child.id()
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

/// A server's standard output and error, read as the server writes them.
#[derive(Clone)]
pub struct Output(Arc<Mutex<String>>);

impl Output {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// The log lines of a server logging JSON (`LOG_FORMAT=json`), each as its object.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .collect()
    }

    /// Whether a log line (of a server logging JSON: `LOG_FORMAT=json`) has `message` and,
    /// when given, was logged in the span of a request to `path`.
    pub fn logged(&self, message: &str, path: Option<&str>) -> bool {
        self.json_lines().iter().any(|line| {
            line["fields"]["message"] == message
                && path.is_none_or(|path| line["span"]["path"] == path)
        })
    }
}

/// Reads `stream` line by line until it closes, into `output` (up to a limit: only a failed
/// start shows it); sends the address of the first `listening on` line to `listening`.
fn collect(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<String>>,
    mut listening: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(base) = line.strip_prefix(LISTENING)
                && let Some(sender) = listening.take()
            {
                let _ = sender.send(base.trim().to_owned());
            }
            let mut output = output.lock().unwrap();
            if output.len() < KEPT_OUTPUT {
                output.push_str(&line);
                output.push('\n');
            }
        }
    })
}

/// The database a server process keeps in `data_dir` (SQLite, the default), opened (and
/// migrated) by the test: users made here log in there.
pub async fn sqlite_store(data_dir: &std::path::Path) -> Arc<dyn billing::store::Store> {
    Arc::new(
        billing::store::connect(&billing::config::DatabaseTarget::Sqlite {
            path: data_dir.join("billing.sqlite3"),
        })
        .await
        .expect("the data folder's database opens"),
    )
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
