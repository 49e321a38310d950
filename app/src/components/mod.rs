//! Pieces of pages: the site's frame, the login gate, and the billing components.

pub mod billing;
pub mod form_error;
pub mod layout;
pub mod require_user;
