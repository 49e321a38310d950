//! Secrets a development server makes for itself on first start and keeps in its data folder.
//!
//! A constant in the source would be the same on every copy of this code: anyone could sign a
//! webhook or a cookie for a development or staging server that is reachable. Each server
//! makes its own instead: 32 random bytes, written once (readable by its owner only) and read
//! again at every start, so restarts keep them. Production takes its secrets from settings.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::config::{Config, Secret};

/// The file of the development webhook secret, in the data folder.
pub const WEBHOOK_SECRET_FILE: &str = "stripe_webhook_secret";
/// The file of the development device-cookie key, in the data folder.
pub const DEVICE_COOKIE_KEY_FILE: &str = "device_cookie_key";

/// What the server signs and checks with.
#[derive(Debug, Clone)]
pub struct ServerSecrets {
    /// Stripe's webhooks (the simulated Stripe signs with it too).
    pub webhook: Secret,
    /// Device cookies.
    pub device_cookie_key: Secret,
}

impl ServerSecrets {
    /// The secrets from the settings (`device_cookie_key` is the server's own); those a
    /// development server has no setting for are made on first start in its data folder (the
    /// log says where, never what).
    pub fn load(config: &Config, device_cookie_key: Option<&Secret>) -> io::Result<Self> {
        Ok(Self {
            webhook: webhook_secret(config)?,
            device_cookie_key: match device_cookie_key {
                Some(key) => key.clone(),
                None => kept(
                    config,
                    DEVICE_COOKIE_KEY_FILE,
                    "",
                    "the key login device cookies are signed with",
                )?,
            },
        })
    }
}

/// The webhook secret alone (for operator commands, which sign no cookie).
pub fn webhook_secret(config: &Config) -> io::Result<Secret> {
    match &config.stripe.webhook_secret {
        Some(secret) => Ok(secret.clone()),
        None => kept(
            config,
            WEBHOOK_SECRET_FILE,
            "whsec_",
            "the secret simulated Stripe webhooks are signed with",
        ),
    }
}

fn kept(config: &Config, file: &str, prefix: &str, what: &str) -> io::Result<Secret> {
    let kept = load_or_create(&config.data_dir, file, prefix)?;
    let path = kept.path.display();
    if kept.created {
        tracing::info!(file = %path, "made {what} and keeps it in this file");
    } else {
        tracing::info!(file = %path, "{what} is kept in this file");
    }
    Ok(kept.secret)
}

/// A secret kept in a file of the data folder.
#[derive(Debug)]
pub struct LocalSecret {
    pub secret: Secret,
    /// Where it is kept (to tell the operator, never the secret itself).
    pub path: PathBuf,
    /// Made by this start (rather than read from an earlier one).
    pub created: bool,
}

/// Reads the secret in `dir/file`, or makes one (`prefix` and 64 hex digits) when there is
/// none. Several processes starting at once on one folder end up with the same secret.
pub fn load_or_create(dir: &Path, file: &str, prefix: &str) -> io::Result<LocalSecret> {
    let path = dir.join(file);
    let created = match read(&path, prefix) {
        Ok(secret) => {
            return Ok(LocalSecret {
                secret,
                path,
                created: false,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => create(dir, &path, prefix)?,
        Err(e) => return Err(e),
    };
    Ok(LocalSecret {
        secret: read(&path, prefix)?,
        path,
        created,
    })
}

fn read(path: &Path, prefix: &str) -> io::Result<Secret> {
    let text = std::fs::read_to_string(path)?;
    let value = text.trim();
    let digits = value.strip_prefix(prefix).unwrap_or_default();
    if digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Secret::new(value))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} does not hold a secret this server made; delete it to make a new one",
                path.display()
            ),
        ))
    }
}

/// Writes a fresh secret to a file of its own, then links it into place: the link fails when
/// another process got there first, so nobody ever reads half a secret. True when ours won.
fn create(dir: &Path, path: &Path, prefix: &str) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let mut draft = tempfile_in(dir)?;
    writeln!(draft.file, "{prefix}{}", hex::encode(bytes))?;
    draft.file.sync_all()?;
    let linked = match std::fs::hard_link(&draft.path, path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&draft.path)?;
    Ok(linked)
}

struct Draft {
    file: std::fs::File,
    path: PathBuf,
}

/// A new file only its owner can read or write.
fn tempfile_in(dir: &Path) -> io::Result<Draft> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    let path = dir.join(format!(".secret-{}.tmp", hex::encode(suffix)));
    Ok(Draft {
        file: options.open(&path)?,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_made_once_kept_private_and_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path(), "webhook", "whsec_").unwrap();
        assert!(first.created);
        assert!(first.secret.expose().starts_with("whsec_"));
        assert_eq!(first.secret.expose().len(), 6 + 64);
        assert_eq!(first.path, dir.path().join("webhook"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let again = load_or_create(dir.path(), "webhook", "whsec_").unwrap();
        assert!(!again.created);
        assert_eq!(again.secret, first.secret);
        let other = load_or_create(dir.path(), "other", "whsec_").unwrap();
        assert_ne!(other.secret, first.secret, "each secret is its own");
        // No drafts are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_damaged_file_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("webhook"),
            "whsec_simulated_development_only",
        )
        .unwrap();
        let error = load_or_create(dir.path(), "webhook", "whsec_").unwrap_err();
        assert!(error.to_string().contains("delete it"), "{error}");
        assert!(
            !error.to_string().contains("simulated_development"),
            "{error}"
        );
    }

    #[test]
    fn processes_starting_together_share_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let made: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_create(dir.path(), "webhook", "whsec_").unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|m| m.created).count(), 1);
        assert!(made.iter().all(|m| m.secret == made[0].secret));
    }
}
