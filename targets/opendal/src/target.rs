//! [`OpendalTarget`]: the sstore [`Target`] over an opendal operator.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use opendal::{EntryMode, Operator};
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    Target, TargetError, TargetErrorKind, check_length, check_range, probe_write,
};
use tokio::io::AsyncReadExt;
use tokio_util::io::StreamReader;

use crate::errors::map;

/// Marks the temporary objects of unfinished puts; never listed.
const TEMP_MARK: &str = ".sstore-part-";
/// How long a readiness check may take before the target counts as unreachable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(20);

/// How uploads are cut and run.
#[derive(Debug, Clone, Copy)]
pub struct TransferSettings {
    pub part_size: u64,
    pub concurrency: usize,
    /// The largest object a service that takes each object in one request (WebDAV) is sent;
    /// such an object is held in memory whole.
    pub single_write_limit: u64,
}

#[derive(Debug, Clone)]
pub struct OpendalTarget {
    op: Operator,
    location: String,
    transfer: TransferSettings,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl OpendalTarget {
    pub fn new(op: Operator, location: String, transfer: TransferSettings) -> Self {
        Self {
            op,
            location,
            transfer,
        }
    }

    fn err(&self, key: Option<&ObjectKey>, e: opendal::Error) -> TargetError {
        map(&self.location, key, e)
    }

    /// Services with a rename publish through a temporary name; object stores publish on
    /// completion.
    fn publishes_by_rename(&self) -> bool {
        self.op.info().capability().rename
    }

    fn temp_name(key: &ObjectKey) -> String {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{key}{TEMP_MARK}{}-{n}", std::process::id())
    }

    async fn exists(&self, key: &ObjectKey) -> Result<bool, TargetError> {
        match self.op.stat(key.as_str()).await {
            Ok(meta) => Ok(!meta.is_dir()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(Some(key), e)),
        }
    }

    fn already_exists(&self, key: &ObjectKey) -> TargetError {
        TargetError::new(
            TargetErrorKind::AlreadyExists,
            &self.location,
            Some(key),
            "already exists",
        )
    }

    /// Streams `body` to `path`; aborts the upload on any failure.
    async fn upload(
        &self,
        key: &ObjectKey,
        path: &str,
        body: PutBody<'_>,
        options: PutOptions,
        if_not_exists: bool,
    ) -> Result<u64, TargetError> {
        if !self.op.info().capability().write_can_multi {
            return self
                .upload_whole(key, path, body, options, if_not_exists)
                .await;
        }
        let mut writer = self
            .op
            .writer_with(path)
            .chunk(self.transfer.part_size as usize)
            .concurrent(self.transfer.concurrency.max(1))
            .if_not_exists(if_not_exists)
            .await
            .map_err(|e| self.err(Some(key), e))?;
        let outcome: Result<u64, TargetError> = async {
            let mut total = 0u64;
            loop {
                let mut chunk = Vec::with_capacity(self.transfer.part_size as usize);
                (&mut *body)
                    .take(self.transfer.part_size)
                    .read_to_end(&mut chunk)
                    .await
                    .map_err(|e| {
                        TargetError::from_io(&self.location, Some(key), e)
                            .context("reading the body")
                    })?;
                if chunk.is_empty() {
                    break;
                }
                total += chunk.len() as u64;
                if options.length.is_some_and(|expected| total > expected) {
                    break;
                }
                writer
                    .write(chunk)
                    .await
                    .map_err(|e| self.err(Some(key), e))?;
            }
            check_length(&self.location, key, total, options.length)?;
            Ok(total)
        }
        .await;
        match outcome {
            Ok(total) => {
                writer
                    .close()
                    .await
                    .map_err(|e| self.err(Some(key), e).context("completing the upload"))?;
                Ok(total)
            }
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// For services that take an object in one request only: reads the body (up to the
    /// limit) and sends it whole.
    async fn upload_whole(
        &self,
        key: &ObjectKey,
        path: &str,
        body: PutBody<'_>,
        options: PutOptions,
        if_not_exists: bool,
    ) -> Result<u64, TargetError> {
        let limit = self.transfer.single_write_limit;
        let mut bytes = Vec::new();
        (&mut *body)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| {
                TargetError::from_io(&self.location, Some(key), e).context("reading the body")
            })?;
        if bytes.len() as u64 > limit {
            return Err(TargetError::new(
                TargetErrorKind::Unsupported,
                &self.location,
                Some(key),
                format!(
                    "this service takes each object in one request, and the object is larger \
                     than max_single_write_mib ({} MiB); raise that setting (the object is \
                     held in memory) or use a target with multipart uploads",
                    limit / (1024 * 1024)
                ),
            ));
        }
        let total = bytes.len() as u64;
        check_length(&self.location, key, total, options.length)?;
        self.op
            .write_with(path, bytes)
            .if_not_exists(if_not_exists)
            .await
            .map_err(|e| self.err(Some(key), e))?;
        Ok(total)
    }

    fn meta(&self, key: ObjectKey, meta: &opendal::Metadata) -> ObjectMeta {
        ObjectMeta {
            modified: meta.last_modified().map(SystemTime::from),
            ..ObjectMeta::new(key, meta.content_length())
        }
    }

    async fn reader(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let reader = self
            .op
            .reader_with(key.as_str())
            .chunk(self.transfer.part_size as usize)
            .await
            .map_err(|e| self.err(Some(key), e))?;
        let stream = reader
            .into_bytes_stream(range)
            .await
            .map_err(|e| self.err(Some(key), e))?;
        Ok(Box::new(StreamReader::new(
            stream.map_err(std::io::Error::other),
        )))
    }
}

#[async_trait]
impl Target for OpendalTarget {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        let native = self.op.info().capability();
        let by_rename = self.publishes_by_rename();
        Capabilities {
            atomic_publish: true,
            conditional_create: !by_rename && native.write_with_if_not_exists,
            multipart: native.write_can_multi,
            server_sha256: false,
            native_ranges: true,
        }
    }

    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        let create = options.mode == PutMode::Create;
        if !self.publishes_by_rename() {
            let native = self.op.info().capability().write_with_if_not_exists;
            if create && !native && self.exists(key).await? {
                return Err(self.already_exists(key));
            }
            let size = self
                .upload(key, key.as_str(), body, options, create && native)
                .await?;
            return Ok(ObjectMeta::new(key.clone(), size));
        }

        if create && self.exists(key).await? {
            return Err(self.already_exists(key));
        }
        let temp = Self::temp_name(key);
        let size = match self.upload(key, &temp, body, options, false).await {
            Ok(size) => size,
            Err(e) => {
                let _ = self.op.delete(&temp).await;
                return Err(e);
            }
        };
        let published: Result<(), TargetError> = async {
            if create && self.exists(key).await? {
                return Err(self.already_exists(key));
            }
            match self.op.rename(&temp, key.as_str()).await {
                Ok(()) => Ok(()),
                // A server whose rename refuses to replace (SFTP without posix-rename):
                // remove the old object, then rename.
                Err(e) if !create && self.exists(key).await.unwrap_or(false) => {
                    self.op
                        .delete(key.as_str())
                        .await
                        .map_err(|_| self.err(Some(key), e))?;
                    self.op
                        .rename(&temp, key.as_str())
                        .await
                        .map_err(|e| self.err(Some(key), e))
                }
                Err(e) => Err(self.err(Some(key), e).context("publishing (rename)")),
            }
        }
        .await;
        if let Err(e) = published {
            let _ = self.op.delete(&temp).await;
            return Err(e);
        }
        Ok(ObjectMeta::new(key.clone(), size))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        let meta = self.stat(key).await?;
        self.reader(key, 0..meta.size).await
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let size = self.stat(key).await?.size;
        check_range(&self.location, key, &range, size)?;
        let end = range.end.min(size);
        if range.start >= end {
            return Ok(Box::new(tokio::io::empty()));
        }
        self.reader(key, range.start..end).await
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        let meta = self
            .op
            .stat(key.as_str())
            .await
            .map_err(|e| self.err(Some(key), e))?;
        if meta.is_dir() {
            return Err(TargetError::new(
                TargetErrorKind::NotFound,
                &self.location,
                Some(key),
                "not found (a folder has that name)",
            ));
        }
        Ok(self.meta(key.clone(), &meta))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        let folder = match prefix.rfind('/') {
            Some(at) => &prefix[..=at],
            None => "",
        };
        if folder.split('/').any(|s| s == ".." || s == ".") {
            return Ok(Vec::new());
        }
        let entries = match self.op.list_with(folder).recursive(true).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(None, e).context("listing")),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.path().trim_start_matches('/');
            if entry.metadata().mode() != EntryMode::FILE
                || !path.starts_with(prefix)
                || path.contains(TEMP_MARK)
            {
                continue;
            }
            let Ok(key) = ObjectKey::new(path) else {
                continue;
            };
            // Some listings leave the size out (it reads as 0): ask for it.
            let meta = if entry.metadata().content_length() == 0 {
                self.stat(&key).await?
            } else {
                self.meta(key, entry.metadata())
            };
            out.push(meta);
        }
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        self.stat(key).await?;
        self.op
            .delete(key.as_str())
            .await
            .map_err(|e| self.err(Some(key), e))
    }

    async fn readiness(&self) -> Result<Readiness, TargetError> {
        match tokio::time::timeout(READINESS_TIMEOUT, probe_write(self)).await {
            Ok(Ok(())) => Ok(Readiness {
                writable: true,
                free_bytes: None,
                detail: Some(format!("opendal service {}", self.op.info().scheme())),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TargetError::new(
                TargetErrorKind::Timeout,
                &self.location,
                None,
                format!("no answer within {READINESS_TIMEOUT:?}"),
            )),
        }
    }
}
