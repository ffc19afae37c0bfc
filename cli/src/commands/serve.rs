//! `serve`: the backup service in the foreground (see the `sstore-service` crate).

use anyhow::Result;
use sstore_core::config::Config;

use super::Context;
use crate::args::ServeArgs;

pub async fn run(ctx: &Context, args: ServeArgs) -> Result<()> {
    let registry = ctx.registry()?;
    // The service keeps its own copy of the configuration for as long as it runs.
    let config = Config::load(ctx.global.config.as_deref())?;
    sstore_service::serve(sstore_service::ServeOptions {
        config,
        registry,
        store_path: ctx.store_path.clone(),
        listen: args.listen,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        plain_http: args.plain_http,
        insecure_listen: args.insecure_listen,
    })
    .await?;
    Ok(())
}
