//! `sstore`: keep a Secure Store of credentials and back it up, encrypted.

fn main() {
    sstore_cli::main();
}
