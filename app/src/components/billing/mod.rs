//! The billing page's components. Each loads its own data through the server functions in
//! `crate::api`, so each works on its own and hydrates on its own.

pub mod current_balance;
pub mod ledger_table;

pub use current_balance::CurrentBalance;
pub use ledger_table::LedgerTable;
