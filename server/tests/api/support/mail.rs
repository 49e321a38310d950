//! The tests' SMTP server (Debian's aiosmtpd, started by `scripts/test`: see `smtp_start` in
//! scripts/lib.sh), read as a mail client reads it: the settings that send an app's notices
//! there under a sender address of the test's own, and the letters that arrived from it. A
//! relay in front of it can be taken down and brought back, for a mail server that goes away.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};

/// A letter as it arrived.
#[derive(Debug, Clone)]
pub struct Letter {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
}

pub struct MailServer {
    host: String,
    port: u16,
    login: String,
    password: String,
    maildir: PathBuf,
    /// `MAIL_FROM` of this test's app: its letters are those from this address.
    pub from: String,
}

impl MailServer {
    /// The tests' SMTP server, with a sender of this test's own; `None` (the test is skipped)
    /// when the tests run without one outside CI.
    pub fn get() -> Option<Self> {
        let (Ok(url), Ok(maildir)) = (
            std::env::var("TEST_SMTP_URL"),
            std::env::var("TEST_MAILDIR"),
        ) else {
            if std::env::var_os("CI").is_some() {
                panic!("TEST_SMTP_URL is required in CI: run the tests through scripts/test");
            }
            eprintln!("SKIPPED: TEST_SMTP_URL is unset (scripts/test starts an SMTP server)");
            return None;
        };
        let url = url::Url::parse(&url).expect("TEST_SMTP_URL is smtp://login:password@host:port");
        Some(Self {
            host: url.host_str().expect("a host").to_owned(),
            port: url.port().expect("a port"),
            login: url.username().to_owned(),
            password: url.password().expect("a password").to_owned(),
            maildir: maildir.into(),
            from: format!("billing-{}@tests.promptbloom.test", rand::random::<u64>()),
        })
    }

    /// The settings that send an app's mail here, through `port` (this server's, or a relay's).
    pub fn settings_through(&self, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("SMTP_HOST", self.host.clone()),
            ("SMTP_PORT", port.to_string()),
            ("SMTP_TLS", "none".to_owned()),
            ("SMTP_USERNAME", self.login.clone()),
            ("SMTP_PASSWORD", self.password.clone()),
            ("MAIL_FROM", format!("PromptBloom Billing <{}>", self.from)),
        ]
    }

    /// The settings that send an app's mail here.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        self.settings_through(self.port)
    }

    /// A relay to this server that can be taken down (it takes connections and drops them
    /// at once) and brought back.
    pub async fn relay(&self) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let target = format!("{}:{}", self.host, self.port);
        let is_up = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay { port, up }
    }

    /// The letters from this test's app that have arrived, in the order they were written.
    pub fn letters(&self) -> Vec<Letter> {
        let mut letters = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(files) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for file in files.flatten() {
                let Ok(raw) = std::fs::read(file.path()) else {
                    continue;
                };
                let Ok(mail) = mailparse::parse_mail(&raw) else {
                    continue;
                };
                use mailparse::MailHeaderMap;
                let header = |name| mail.headers.get_first_value(name).unwrap_or_default();
                let letter = Letter {
                    from: header("From"),
                    to: header("To"),
                    subject: header("Subject"),
                    message_id: header("Message-ID"),
                    text: mail.get_body().unwrap_or_default().replace("\r\n", "\n"),
                };
                if letter.from.contains(&self.from) {
                    letters.push(letter);
                }
            }
        }
        // `<notice-ID@...>`: notices are numbered as they are written.
        letters.sort_by_key(|letter| {
            letter
                .message_id
                .trim_start_matches("<notice-")
                .split('@')
                .next()
                .and_then(|id| id.parse::<i64>().ok())
        });
        letters
    }
}

/// A relay in front of the tests' SMTP server.
pub struct Relay {
    pub port: u16,
    up: Arc<AtomicBool>,
}

impl Relay {
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}
