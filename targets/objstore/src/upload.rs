//! Puts. A body that fits in one part goes up in one request (create-only with
//! `If-None-Match: *` where asked). A larger one goes up as a multipart (S3) or block (Azure)
//! upload: parts are read one at a time, at most `concurrency` are in flight, and the service
//! assembles the object only on completion, so nothing partial is ever visible. A failing body,
//! a length that differs from the one announced, or a failed part aborts the upload.
//!
//! Part size: the configured size (default 8 MiB, at least the S3 minimum of 5 MiB), raised
//! for a large announced length so the object fits in S3's 10,000 parts. Memory stays flat:
//! at most `concurrency + 1` parts are held at once.

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attributes, ObjectStore, ObjectStoreExt, PutMode as StoreMode, PutMultipartOptions,
    PutOptions as StorePut, WriteMultipart,
};
use sstore_target_api::{ObjectKey, PutBody, PutMode, PutOptions, TargetError, check_length};
use tokio::io::AsyncReadExt;

use crate::errors::ErrorContext;

const MIB: u64 = 1024 * 1024;
/// The smallest part S3 accepts (except the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The most parts an S3 multipart upload may have.
pub const MAX_PARTS: u64 = 10_000;
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How large objects are uploaded.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// The part size to start from (bytes).
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// Attributes every object gets (the S3 storage class).
    pub attributes: Attributes,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            attributes: Attributes::new(),
        }
    }
}

/// The part size for an object of `length` bytes: the configured size, at least 5 MiB, and
/// large enough (in whole MiB) that the object fits in 10,000 parts.
pub fn part_size(configured: u64, length: Option<u64>) -> u64 {
    let base = configured.max(MIN_PART_SIZE);
    match length {
        Some(length) => base.max(length.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB),
        None => base,
    }
}

/// Reads up to `limit` bytes (fewer only at the end of the body).
async fn read_chunk(body: PutBody<'_>, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::with_capacity(limit as usize);
    body.take(limit).read_to_end(&mut chunk).await?;
    Ok(chunk)
}

/// Uploads `body` to `path`; returns the number of bytes stored.
pub async fn put(
    store: &dyn ObjectStore,
    ctx: &ErrorContext,
    settings: &UploadSettings,
    path: &Path,
    key: &ObjectKey,
    body: PutBody<'_>,
    options: PutOptions,
) -> Result<u64, TargetError> {
    let io_err = |e| TargetError::from_io(&ctx.location, Some(key), e).context("reading the body");
    // A create-only put looks first: a server may answer 412 before reading the body and
    // close the connection, which the client sees as a network failure. The request itself is
    // still conditional (single puts); multipart completion cannot be made conditional
    // through object_store, and the destination lock keeps a second writer away.
    if options.mode == PutMode::Create {
        match store.head(path).await {
            Ok(_) => {
                return Err(TargetError::new(
                    sstore_target_api::TargetErrorKind::AlreadyExists,
                    &ctx.location,
                    Some(key),
                    "already exists",
                ));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(ctx.map(Some(key), e)),
        }
    }
    let part = part_size(settings.part_size, options.length);
    let first = read_chunk(body, part).await.map_err(io_err)?;
    if (first.len() as u64) < part {
        let length = first.len() as u64;
        check_length(&ctx.location, key, length, options.length)?;
        let mode = match options.mode {
            PutMode::Create => StoreMode::Create,
            PutMode::Overwrite => StoreMode::Overwrite,
        };
        let opts = StorePut {
            mode,
            attributes: settings.attributes.clone(),
            ..Default::default()
        };
        store
            .put_opts(path, Bytes::from(first).into(), opts)
            .await
            .map_err(|e| ctx.map_write(key, e))?;
        return Ok(length);
    }

    let opts = PutMultipartOptions {
        attributes: settings.attributes.clone(),
        ..Default::default()
    };
    let upload = store
        .put_multipart_opts(path, opts)
        .await
        .map_err(|e| ctx.map_write(key, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part as usize);
    let mut total = first.len() as u64;
    writer.put(Bytes::from(first));
    let outcome: Result<(), TargetError> = async {
        loop {
            writer
                .wait_for_capacity(settings.concurrency.max(1))
                .await
                .map_err(|e| ctx.map(Some(key), e).context("uploading a part"))?;
            let chunk = read_chunk(body, part).await.map_err(io_err)?;
            if chunk.is_empty() {
                break;
            }
            total += chunk.len() as u64;
            if options.length.is_some_and(|expected| total > expected) {
                break;
            }
            writer.put(Bytes::from(chunk));
        }
        check_length(&ctx.location, key, total, options.length)
    }
    .await;
    if let Err(e) = outcome {
        // Best effort: an upload left behind is invisible and expires (see the crate docs).
        let _ = writer.abort().await;
        return Err(e);
    }
    writer
        .finish()
        .await
        .map_err(|e| ctx.map(Some(key), e).context("completing the upload"))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_respect_the_minimum_and_the_part_count() {
        assert_eq!(part_size(MIB, None), MIN_PART_SIZE);
        assert_eq!(
            part_size(DEFAULT_PART_SIZE, Some(1024 * MIB)),
            DEFAULT_PART_SIZE
        );
        // 1 TiB in 8 MiB parts would be 131,072 parts: the size grows to fit 10,000.
        let tib = 1024 * 1024 * MIB;
        let size = part_size(DEFAULT_PART_SIZE, Some(tib));
        assert!(tib.div_ceil(size) <= MAX_PARTS, "{size}");
        assert_eq!(size % MIB, 0);
        assert_eq!(size, 105 * MIB);
    }
}
