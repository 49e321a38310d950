//! The moment a transaction acts at, and the database it acts on: what every step inside one
//! (a posting, a grant, a settle of expiries) is handed.

use crate::domain::Timestamp;
use crate::store::Backend;

#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub backend: Backend,
    pub now: Timestamp,
}
