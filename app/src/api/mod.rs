//! Server functions: the HTTP API the page and JSON clients share.

pub mod status;
