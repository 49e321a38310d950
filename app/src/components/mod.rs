//! Pieces of pages: what an island reads from the address, the site's frame, the login gate, times in the viewer's zone, and the billing
//! components.

pub mod address;
pub mod billing;
pub mod form_error;
pub mod layout;
pub mod local_time;
pub mod require_user;
