//! The object_store adapter behind the S3 and Azure Blob targets.
//!
//! [`ObjectStoreTarget`] turns any `object_store` backend plus a key prefix into an sstore
//! [`Target`](sstore_target_api::Target). The `s3` and `azure` target crates only build the
//! backend from their settings; everything else is shared here:
//!
//! - [`upload`]: single-request puts for small bodies, multipart/block uploads with bounded
//!   concurrency and a part size chosen from the object size for large ones; aborted on any
//!   failure, so nothing partial is ever visible.
//! - [`download`]: ordered ranged GETs, several in flight, pinned to one version.
//! - [`tuning`]: the part, chunk and concurrency settings both kinds accept.
//! - [`client`]: timeouts and in-request retries for the HTTP client.
//! - [`errors`]: object_store errors as target errors with a retry status, naming the bucket
//!   or container.
//! - [`target`]: the `Target` implementation (prefixing, listing by string prefix, ranged
//!   reads, readiness under a time limit).
//!
//! Create-only puts use the service's conditional create (`If-None-Match: *`) for single
//! requests; a multipart upload checks for the key first and relies on the destination lock.
//! An upload that dies with the process leaves an unfinished multipart upload: invisible,
//! never listed, and removed by the bucket's lifecycle rule (S3, see the README) or by the
//! service after a week (Azure's uncommitted blocks).

pub mod client;
pub mod download;
pub mod errors;
pub mod target;
pub mod tuning;
pub mod upload;

pub use download::DownloadSettings;
pub use errors::ErrorContext;
pub use target::ObjectStoreTarget;
pub use tuning::Tuning;
pub use upload::UploadSettings;
