//! Email: the settings ([`settings`]), and the mailer that sends the notices the database
//! writes beside the events a person is told about, at least once, after their change commits.

pub mod settings;

use std::sync::Arc;
use std::time::Duration;

use billing::clock::Clock;
use billing::notices::letter_for;
use billing::outbox::{AfterAttempt, after_failure};
use billing::store::{DueNotice, NoticeSent, Store, StoreError};
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use settings::{MailSettings, MailTransport, SmtpTls};

/// How often the mailer looks for notices whose time has come.
const PERIOD: Duration = Duration::from_secs(1);
/// Notices claimed a round; each is sent in turn over the transport's pooled connections.
const PER_ROUND: i64 = 16;
/// How long a claim holds: longer than sending a round can take.
const LEASE: Duration = Duration::from_secs(120);
/// The longest one SMTP command may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where letters go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>, std::path::PathBuf),
}

/// Why a transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the SMTP settings are unusable: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("the mailbox folder {0} cannot be made: {1}")]
    Folder(String, std::io::Error),
}

/// Sends email notices for as long as the server runs.
pub struct Mailer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    transport: Transport,
    from: Mailbox,
    /// The billing page's address, which every letter links to.
    billing_page: String,
}

impl Mailer {
    pub fn new(
        settings: &MailSettings,
        billing_page: &str,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        let transport = match &settings.transport {
            MailTransport::Smtp(smtp) => {
                let tls = match smtp.tls {
                    SmtpTls::Implicit => Tls::Wrapper(TlsParameters::new(smtp.host.clone())?),
                    SmtpTls::StartTls => Tls::Required(TlsParameters::new(smtp.host.clone())?),
                    SmtpTls::None => Tls::None,
                };
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
                        .port(smtp.port)
                        .tls(tls)
                        .timeout(Some(SMTP_TIMEOUT));
                if let Some((user, password)) = &smtp.credentials {
                    builder = builder
                        .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Transport::Smtp(builder.build())
            }
            MailTransport::Folder(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| MailError::Folder(dir.display().to_string(), e))?;
                Transport::Folder(AsyncFileTransport::new(dir), dir.clone())
            }
        };
        Ok(Self {
            store,
            clock,
            transport,
            from: settings.from.clone(),
            billing_page: billing_page.to_owned(),
        })
    }

    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(error) = self.round().await {
                    tracing::warn!(%error, "sending email notices failed; trying again");
                }
            }
        });
    }

    /// Sends the notices whose time has come, a round at a time until none are left.
    async fn round(&self) -> Result<(), StoreError> {
        loop {
            let due = self
                .store
                .claim_notices(self.clock.now(), PER_ROUND, LEASE)
                .await?;
            let full = due.len() as i64 == PER_ROUND;
            for notice in &due {
                let sent = self.send(notice).await;
                let outcome = match sent.next {
                    AfterAttempt::Delivered => "delivered",
                    AfterAttempt::RetryAt(_) => "retrying",
                    AfterAttempt::GiveUp => "failed",
                };
                metrics::counter!("billing_email_notices_total", "outcome" => outcome).increment(1);
                if let Some(error) = &sent.error {
                    tracing::warn!(
                        notice = notice.id,
                        kind = notice.event.kind.as_str(),
                        attempt = notice.attempts + 1,
                        outcome,
                        error,
                        "an email notice was not taken by the mail server"
                    );
                }
                if let Err(error) = self.store.record_notice(notice, &sent).await {
                    // Unrecorded, the claim runs out and the notice is sent again: at least once.
                    tracing::error!(%error, notice = notice.id, "recording an email notice failed");
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn send(&self, notice: &DueNotice) -> NoticeSent {
        let result = self.deliver(notice).await;
        let at = self.clock.now();
        match result {
            Ok(()) => NoticeSent {
                at,
                error: None,
                next: AfterAttempt::Delivered,
            },
            Err(Failure::ForGood(error)) => NoticeSent {
                at,
                error: Some(error),
                next: AfterAttempt::GiveUp,
            },
            Err(Failure::ForNow(error)) => NoticeSent {
                at,
                error: Some(error),
                next: after_failure(notice.attempts + 1, notice.created_at, at),
            },
        }
    }

    async fn deliver(&self, notice: &DueNotice) -> Result<(), Failure> {
        let letter = letter_for(&notice.event, &self.billing_page)
            .map_err(|e| Failure::ForGood(e.to_string()))?;
        let to: Mailbox = notice
            .to
            .as_str()
            .parse()
            .map_err(|e| Failure::ForGood(format!("the address is unusable: {e}")))?;
        // The same id on every attempt, so a mail client shows a notice sent twice once.
        let domain = self.from.email.domain();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(letter.subject.clone())
            .message_id(Some(format!("<notice-{}@{domain}>", notice.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(letter.text)
            .map_err(|e| Failure::ForGood(format!("the letter cannot be built: {e}")))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| {
                // A refused login is the operator's to fix (a wrong or expired password): the
                // notice waits for it, as for a server that cannot be reached.
                let login_refused = e
                    .status()
                    .is_some_and(|code| matches!(code.to_string().as_str(), "530" | "534" | "535"));
                if e.is_permanent() && !login_refused {
                    Failure::ForGood(e.to_string())
                } else {
                    Failure::ForNow(e.to_string())
                }
            }),
            Transport::Folder(folder, dir) => {
                let id = folder
                    .send(message)
                    .await
                    .map_err(|e| Failure::ForNow(e.to_string()))?;
                tracing::info!(
                    subject = letter.subject,
                    file = %dir.join(format!("{id}.eml")).display(),
                    "an email notice was kept in the development mailbox"
                );
                Ok(())
            }
        }
    }
}

/// Why a notice was not sent: for good (the server refused it with a 5xx, the address is
/// unusable), or for now (it could not be reached, it answered 4xx).
enum Failure {
    ForGood(String),
    ForNow(String),
}
