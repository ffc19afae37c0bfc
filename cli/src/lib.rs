//! The `sstore` command as a library, so a custom binary can add compiled-in target kinds:
//! reference your target crate, then call [`main`]. The stock binary is `src/main.rs`.

mod args;
mod commands;
mod exit;
mod keys;
mod passphrase;
mod progress;
mod targets;

use clap::Parser;

pub use targets::builtin_kinds;

/// Parses the command line, runs the command, and exits with the documented exit code.
pub fn main() {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    if let Err(err) = result {
        eprintln!("error: {}", exit::describe(&err));
        std::process::exit(exit::code(&err));
    }
}
