//! `sstore serve`: the backup service.

pub mod auth;
