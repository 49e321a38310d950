pub mod admin;
pub mod billing;
pub mod login;
pub mod signup;
pub mod statement;
