//! An example of a compiled-in sstore target: `mirror` writes every object to several local
//! folders (two USB disks, a disk and a NAS mount) and reads from the first folder that has it.
//!
//! It shows the three steps of a compiled-in target: implement [`Target`] (here by composing
//! the built-in local target), register a [`BuiltinKind`] with `inventory::submit!`, and build a
//! binary that references the crate and calls `sstore_cli::main()` (see `src/main.rs`).
//!
//! ```toml
//! [[target]]
//! name = "usb-pair"
//! kind = "mirror"
//! paths = ["/media/usb-a/sstore", "/media/usb-b/sstore"]
//! ```

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use sstore_target_api::{
    BuiltinKind, Capabilities, ObjectKey, ObjectMeta, ObjectReader, OpenRequest, PutBody, PutMode,
    PutOptions, Readiness, Target, TargetError,
};
use sstore_target_local::LocalTarget;

inventory::submit! {
    BuiltinKind {
        name: "mirror",
        schemes: &[],
        description: "example compiled-in target: every object written to several folders",
        open: open_mirror,
    }
}

/// Call from `main` so the linker keeps this crate's registration.
pub fn link() {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorSettings {
    /// Two or more folders; the first is read first.
    paths: Vec<PathBuf>,
}

fn open_mirror(request: &OpenRequest) -> Result<Arc<dyn Target>, TargetError> {
    if request.url.is_some() {
        return Err(request.invalid("the mirror kind is configured with `paths`, not a URL"));
    }
    let settings: MirrorSettings = request.settings()?;
    if settings.paths.len() < 2 {
        return Err(request.invalid("a mirror needs at least two `paths`"));
    }
    Ok(Arc::new(Mirror {
        name: request.name.clone(),
        copies: settings.paths.into_iter().map(LocalTarget::new).collect(),
    }))
}

/// Several folders kept identical.
#[derive(Debug)]
pub struct Mirror {
    name: String,
    copies: Vec<LocalTarget>,
}

impl Mirror {
    /// The first copy answers reads; the rest follow it.
    fn primary(&self) -> &LocalTarget {
        &self.copies[0]
    }
}

#[async_trait]
impl Target for Mirror {
    fn location(&self) -> String {
        format!("mirror:{}", self.name)
    }

    fn capabilities(&self) -> Capabilities {
        // Publishing is atomic in each folder, but not across folders.
        Capabilities {
            atomic_publish: false,
            ..self.primary().capabilities()
        }
    }

    /// Writes the first folder from `body`, then copies that object to the others. If a later
    /// copy fails, a create-only put is undone everywhere, so the key is absent, not half-there.
    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        let meta = self.primary().put(key, body, options).await?;
        for (done, copy) in self.copies[1..].iter().enumerate() {
            let copied = async {
                let mut reader = self.primary().get(key).await?;
                copy.put(key, &mut reader, options.mode.into()).await
            }
            .await;
            if let Err(e) = copied {
                if options.mode == PutMode::Create {
                    for written in &self.copies[..=done] {
                        let _ = written.delete(key).await;
                    }
                }
                return Err(e.context(format!("mirroring to copy {}", done + 2)));
            }
        }
        Ok(meta)
    }

    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        let mut last = None;
        for copy in &self.copies {
            match copy.get(key).await {
                Ok(reader) => return Ok(reader),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.primary_missing(key)))
    }

    async fn get_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ObjectReader, TargetError> {
        let mut last = None;
        for copy in &self.copies {
            match copy.get_range(key, range.clone()).await {
                Ok(reader) => return Ok(reader),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| self.primary_missing(key)))
    }

    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        self.primary().stat(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        self.primary().list(prefix).await
    }

    /// Deletes from every folder; `NotFound` only if no folder had it.
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        let mut found = false;
        for copy in &self.copies {
            match copy.delete(key).await {
                Ok(()) => found = true,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        if found {
            Ok(())
        } else {
            Err(self.primary_missing(key))
        }
    }

    /// Ready when every folder is; free space is the smallest.
    async fn readiness(&self) -> Result<Readiness, TargetError> {
        let mut free: Option<u64> = None;
        for copy in &self.copies {
            let r = copy.readiness().await?;
            free = match (free, r.free_bytes) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(Readiness {
            writable: true,
            free_bytes: free,
            detail: Some(format!("{} copies", self.copies.len())),
        })
    }
}

impl Mirror {
    fn primary_missing(&self, key: &ObjectKey) -> TargetError {
        TargetError::new(
            sstore_target_api::TargetErrorKind::NotFound,
            &self.location(),
            Some(key),
            "not found in any copy",
        )
    }
}
