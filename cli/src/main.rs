//! `sstore`: keep a Secure Store of credentials and back it up, encrypted.
//!
//! The system allocator on purpose: glibc maps Argon2id's 64 MiB work area on its own and
//! unmaps it when the key is derived, so the KDF's memory and the backup's buffers never add
//! up. mimalloc (v3) kept the freed area committed for its purge delay (1 s) and took a new
//! one for the next derivation: a backup of a 1M-set store peaked at 160-190 MiB with it,
//! 83 MiB without (issue 17).

fn main() {
    sstore_cli::main();
}
