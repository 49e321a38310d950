//! HTTP tests of the server: each test spawns the whole application on a free port.

mod helpers;

mod health;
mod pages;
