//! The store's two homes in one test binary:
//! - `homes`: the store's promises written once, run on SQLite and (with
//!   `SSTORE_TEST_MSSQL_URL`) on a real SQL Server;
//! - `standin`, `logs`: protocol-level tests against the TDS stand-in (not a T-SQL engine);
//! - `engine`: the real-engine suite (skips with a note without `SSTORE_TEST_MSSQL_URL`).

#![allow(clippy::unwrap_used)]

mod engine;
mod homes;
mod logs;
mod standin;
