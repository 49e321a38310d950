//! HTTP tests of the server: each test spawns the whole application on a free port.

mod helpers;
mod process;

mod abuse;
mod accounts;
mod admin;
mod billing;
mod cli;
mod consume;
mod faults;
mod health;
mod ledger;
mod nodes;
mod pages;
mod reconcile;
mod stripe_live;
mod webhook;
