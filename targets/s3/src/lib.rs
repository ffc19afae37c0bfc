//! sstore target: Amazon S3 and S3-compatible object stores, through object_store.
//!
//! `s3://bucket/prefix` on the command line, or a `[[target]]` with `kind = "s3"`. Settings
//! come, in this order, from the target's config, the standard AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...), the shared AWS files' profile (`AWS_PROFILE`,
//! `~/.aws/credentials`, `~/.aws/config`), and finally object_store's own chain (web
//! identity, ECS task role, EC2 instance metadata). Uploads, errors and the rest of the
//! contract are shared with Azure in `sstore-target-objstore`.
//!
//! - [`settings`]: the `kind = "s3"` settings and how they become a client.
//! - [`profile`]: the shared AWS config and credentials files.

use std::sync::Arc;

use sstore_target_api::{BuiltinKind, OpenRequest, Target, TargetError};

pub mod profile;
pub mod settings;

/// The kind name in config files (`kind = "s3"`).
pub const KIND: &str = "s3";

inventory::submit! {
    BuiltinKind {
        name: KIND,
        schemes: &["s3", "s3a"],
        description: "Amazon S3 and S3-compatible stores (s3://bucket/prefix; AWS environment and profiles)",
        open: open_s3,
    }
}

/// The kind's name. The `sstore` binary calls this so the linker keeps the registration.
pub fn kind() -> &'static str {
    KIND
}

fn open_s3(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    Ok(Arc::new(settings::open(request)?))
}
