use std::fmt;

use serde::{Deserialize, Serialize};

use super::DomainError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            pub fn new(id: i64) -> Result<Self, DomainError> {
                if id > 0 { Ok(Self(id)) } else { Err(DomainError::InvalidId) }
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = DomainError;
            fn try_from(id: i64) -> Result<Self, Self::Error> {
                Self::new(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.trim().parse::<i64>().map_err(|_| DomainError::InvalidId).and_then(Self::new)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user account.
    UserId
);
id_type!(
    /// One ledger entry; ids grow with time, so they double as pagination cursors.
    LedgerEntryId
);
id_type!(
    /// A hold: tokens reserved before work runs.
    HoldId
);
id_type!(
    /// A grant: the tokens one credit brought, spent and expired from.
    GrantId
);
