//! HTTP tests of the server: each test spawns the whole application on a free port.
//! What they share is in [`support`].
//!
//! Run them one at a time (`-- --test-threads=1`, as `scripts/test` does): several Leptos
//! apps rendering pages at once in one process can leave a render waiting forever.

mod support;

mod abuse;
mod accounts;
mod admin;
mod auto_topup;
mod billing;
mod cli;
mod compression_and_caching;
mod consume;
mod consume_batch;
mod faults;
mod health;
mod histories;
mod holds;
mod ledger;
mod nodes;
mod notices;
mod outgoing_webhooks;
mod pages;
mod reconcile;
mod schedules;
mod stream;
mod stripe_live;
mod webhook;
