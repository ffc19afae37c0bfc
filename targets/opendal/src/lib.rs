//! sstore target: every other storage service, through opendal.
//!
//! One kind, `opendal`, serves any service this build of the opendal crate has (features
//! `sftp`, `webdav` and `gcs` by default). A target names the service and passes its options
//! through unchanged; `sftp://`, `webdav://`, `webdavs://` and `gs://` URLs work on the
//! command line. Retries and time limits are opendal's own layers (`RetryLayer`,
//! `TimeoutLayer`), not hand-written ones.
//!
//! Services with a rename (SFTP, WebDAV) write each object under a temporary name beside the
//! final one and rename it into place, so nothing partial is ever visible; object stores
//! (GCS) publish on completion and use their conditional create.
//!
//! - [`settings`]: URLs and `[[target]]` settings as an opendal scheme plus options.
//! - [`errors`]: opendal errors as target errors.
//! - [`target`]: the `Target` implementation.

use std::sync::Arc;

use sstore_target_api::{BuiltinKind, OpenRequest, Target, TargetError};

pub mod errors;
pub mod settings;
pub mod target;

pub use target::OpendalTarget;

/// The kind name in config files (`kind = "opendal"`).
pub const KIND: &str = "opendal";

inventory::submit! {
    BuiltinKind {
        name: KIND,
        schemes: settings::URL_SCHEMES,
        description: "SFTP, WebDAV, GCS and other services through opendal (sftp://, webdav[s]://, gs://)",
        open: open_opendal,
    }
}

/// The kind's name. The `sstore` binary calls this so the linker keeps the registration.
pub fn kind() -> &'static str {
    KIND
}

fn open_opendal(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    Ok(Arc::new(settings::open(request)?))
}
