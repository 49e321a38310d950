//! HTTP tests of the server: each test spawns the whole application on a free port.

mod helpers;

mod abuse;
mod accounts;
mod admin;
mod billing;
mod cli;
mod consume;
mod health;
mod pages;
mod reconcile;
mod webhook;
