//! `sstore-mirror`: the stock `sstore` command with the `mirror` target kind compiled in.

fn main() {
    // Referencing the crate keeps its `inventory` registration in the binary.
    sstore_example_mirror::link();
    sstore_cli::main();
}
