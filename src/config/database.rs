//! Where everything is kept: `DATA_DIR` (local state) and `DATABASE_URL`.

use std::path::PathBuf;

use super::vars::Vars;
use super::{ConfigError, Secret};

/// The database the server stores everything in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// A SQLite file, created when missing: the embedded default.
    Sqlite { path: PathBuf },
    /// A PostgreSQL server: the production shape, shared by several nodes.
    Postgres { url: Secret },
}

impl DatabaseTarget {
    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseTarget::Sqlite { .. } => "sqlite",
            DatabaseTarget::Postgres { .. } => "postgres",
        }
    }
}

/// The data folder (default `data`) and the database in it, or at `DATABASE_URL`.
pub(super) fn from_env(vars: &Vars) -> Result<(PathBuf, DatabaseTarget), ConfigError> {
    let data_dir = PathBuf::from(vars.var("DATA_DIR").unwrap_or_else(|| "data".into()));
    let database = match vars.var("DATABASE_URL") {
        None => DatabaseTarget::Sqlite {
            path: data_dir.join("billing.sqlite3"),
        },
        Some(url) => parse_database_url(&url)?,
    };
    Ok((data_dir, database))
}

fn parse_database_url(raw: &str) -> Result<DatabaseTarget, ConfigError> {
    const VAR: &str = "DATABASE_URL";
    if let Some(rest) = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))
    {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(ConfigError::new(
                VAR,
                "a SQLite URL needs a file path, e.g. sqlite://data/billing.sqlite3",
            ));
        }
        return Ok(DatabaseTarget::Sqlite {
            path: PathBuf::from(path),
        });
    }
    if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        url::Url::parse(raw).map_err(|_| ConfigError::new(VAR, "not a valid PostgreSQL URL"))?;
        return Ok(DatabaseTarget::Postgres {
            url: Secret::new(raw),
        });
    }
    Err(ConfigError::new(
        VAR,
        "expected a sqlite:// or postgres:// URL",
    ))
}
