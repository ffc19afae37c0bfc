//! `sstore serve`: the backup service.
