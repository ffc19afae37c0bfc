//! `sstore`: keep a Secure Store of credentials and back it up, encrypted.

mod args;
mod commands;
mod config;
mod exit;
mod passphrase;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
