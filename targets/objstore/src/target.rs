//! [`ObjectStoreTarget`]: the sstore [`Target`] over any object_store backend, with every key
//! under one prefix of one bucket or container.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sstore_target_api::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutOptions, Readiness, Target,
    TargetError, TargetErrorKind, check_range, probe_write,
};

use crate::download::{self, DownloadSettings};
use crate::errors::ErrorContext;
use crate::upload::{self, UploadSettings};

/// How long a readiness check may take before the target counts as unreachable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(20);

/// A bucket or container (and a prefix in it) as a target.
#[derive(Debug, Clone)]
pub struct ObjectStoreTarget {
    store: Arc<dyn ObjectStore>,
    /// The key prefix without a trailing `/`; empty for the container's root.
    prefix: String,
    ctx: ErrorContext,
    upload: UploadSettings,
    download: DownloadSettings,
    conditional_create: bool,
}

impl ObjectStoreTarget {
    /// The target for `prefix` in `container` (a bucket or container, `container_word` says
    /// which), named `scheme://container/prefix` in messages; default transfer settings.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        scheme: &str,
        container_word: &'static str,
        container: String,
        prefix: &str,
    ) -> Self {
        let prefix = prefix.trim_matches('/').to_owned();
        let location = if prefix.is_empty() {
            format!("{scheme}://{container}")
        } else {
            format!("{scheme}://{container}/{prefix}")
        };
        Self {
            store,
            prefix,
            ctx: ErrorContext {
                location,
                container_word,
                container,
            },
            upload: UploadSettings::default(),
            download: DownloadSettings::S3,
            conditional_create: true,
        }
    }

    /// How objects are uploaded and downloaded (see [`crate::tuning`]).
    pub fn with_transfer(mut self, upload: UploadSettings, download: DownloadSettings) -> Self {
        self.upload = upload;
        self.download = download;
        self
    }

    /// Whether to claim that the service enforces create-only puts atomically (it is asked to
    /// in every case). Some S3-compatible servers check `If-None-Match` without a lock.
    pub fn with_conditional_create(mut self, enforced: bool) -> Self {
        self.conditional_create = enforced;
        self
    }

    fn path(&self, key: &ObjectKey) -> Result<Path, TargetError> {
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        Path::parse(&full).map_err(|e| {
            TargetError::new(
                TargetErrorKind::InvalidConfig,
                &self.ctx.location,
                Some(key),
                format!("not a valid object name: {e}"),
            )
        })
    }

    /// The key of a listed object, if it lies under the prefix.
    fn key_of(&self, path: &Path) -> Option<ObjectKey> {
        let text = path.as_ref();
        let relative = if self.prefix.is_empty() {
            text
        } else {
            text.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        ObjectKey::new(relative).ok()
    }

    fn meta(&self, key: ObjectKey, meta: &object_store::ObjectMeta) -> ObjectMeta {
        ObjectMeta {
            modified: Some(SystemTime::from(meta.last_modified)),
            ..ObjectMeta::new(key, meta.size)
        }
    }

    fn reader(&self, path: Path, e_tag: Option<String>, range: Range<u64>) -> ObjectReader {
        download::ranged_reader(self.store.clone(), path, e_tag, range, self.download)
    }
}

#[async_trait]
impl Target for ObjectStoreTarget {
    fn location(&self) -> String {
        self.ctx.location.clone()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_publish: true,
            conditional_create: self.conditional_create,
            multipart: true,
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
        let path = self.path(key)?;
        let size = upload::put(
            self.store.as_ref(),
            &self.ctx,
            &self.upload,
            &path,
            key,
            body,
            options,
        )
        .await?;
        Ok(ObjectMeta::new(key.clone(), size))
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.ctx.map(Some(key), e))?;
        Ok(self.reader(path, meta.e_tag, 0..meta.size))
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.ctx.map(Some(key), e))?;
        check_range(&self.ctx.location, key, &range, meta.size)?;
        let end = range.end.min(meta.size);
        if range.start >= end {
            return Ok(Box::new(tokio::io::empty()));
        }
        Ok(self.reader(path, meta.e_tag, range.start..end))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        let path = self.path(key)?;
        let meta = self
            .store
            .head(&path)
            .await
            .map_err(|e| self.ctx.map(Some(key), e))?;
        Ok(self.meta(key.clone(), &meta))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        // object_store lists whole path segments; a partial name ("backup-1" matching
        // "backup-10/") is listed from its folder and filtered here.
        let folder = match prefix.rfind('/') {
            Some(at) => &prefix[..at],
            None => "",
        };
        let under = [self.prefix.as_str(), folder]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        if folder.split('/').any(|s| s == ".." || s == ".") {
            return Ok(Vec::new());
        }
        let list_path = if under.is_empty() {
            None
        } else {
            match Path::parse(&under) {
                Ok(path) => Some(path),
                Err(_) => return Ok(Vec::new()),
            }
        };
        let mut stream = self.store.list(list_path.as_ref());
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.ctx.map(None, e).context("listing"))?;
            if let Some(key) = self.key_of(&meta.location)
                && key.as_str().starts_with(prefix)
            {
                out.push(self.meta(key, &meta));
            }
        }
        out.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        Ok(out)
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        // Deletes are idempotent on object stores; the contract wants NotFound for a missing key.
        self.stat(key).await?;
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.ctx.map(Some(key), e)),
        }
    }

    async fn readiness(&self) -> Result<Readiness, TargetError> {
        let check = async {
            // A listing first: it tells a missing bucket from a refused write on every server.
            let prefix = (!self.prefix.is_empty())
                .then(|| Path::parse(&self.prefix).ok())
                .flatten();
            if let Err(e) = self.store.list_with_delimiter(prefix.as_ref()).await {
                let e = self.ctx.container_missing(self.ctx.map(None, e));
                return Err(e.context("listing"));
            }
            probe_write(self).await
        };
        match tokio::time::timeout(READINESS_TIMEOUT, check).await {
            Ok(Ok(())) => Ok(Readiness {
                writable: true,
                free_bytes: None,
                detail: Some(format!(
                    "{} {}; uploads in {} MiB parts ({} at a time), downloads in {} MiB \
                     ranges ({} at a time)",
                    self.ctx.container_word,
                    self.ctx.container,
                    self.upload.part_size / (1024 * 1024),
                    self.upload.concurrency,
                    self.download.chunk_size / (1024 * 1024),
                    self.download.concurrency,
                )),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(TargetError::new(
                TargetErrorKind::Timeout,
                &self.ctx.location,
                None,
                format!("no answer within {READINESS_TIMEOUT:?}"),
            )),
        }
    }
}
