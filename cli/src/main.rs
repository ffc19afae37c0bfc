//! `sstore`: keep a Secure Store of credentials and back it up, encrypted.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    sstore_cli::main();
}
