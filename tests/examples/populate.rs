//! `cargo run -p sstore-tests --example populate -- PATH APPS PER_APP`: an SQLite store filled
//! the way the tests fill one (`sstore_tests::populate`, passphrase `Test-Passphrase-42`), for
//! benchmarks that need a large store quickly (`cargo xtask bench-mssql`).

use std::path::Path;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, apps, per_app] = args.as_slice() else {
        return Err("usage: populate PATH APPS PER_APP".into());
    };
    let apps: usize = apps.parse().map_err(|_| format!("bad APPS {apps}"))?;
    let per_app: usize = per_app
        .parse()
        .map_err(|_| format!("bad PER_APP {per_app}"))?;
    if Path::new(path).exists() {
        return Err(format!("{path} exists"));
    }
    let sets = sstore_tests::populate(Path::new(path), apps, per_app);
    println!("{sets}");
    Ok(())
}
