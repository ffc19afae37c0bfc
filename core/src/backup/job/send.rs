//! Sending one staged backup to one destination (a part of fan-out): the backup file, its
//! manifest and its log into the numbered folder, each verified on the destination (size and
//! SHA-256, by read-back or a checksum the service computed over the bytes). Every step retries
//! temporary failures; an object already on the destination with the right content is never
//! sent again, which is what makes an interrupted transfer resumable. Listing the backup in the
//! destination's history is left to settling, once the job's outcome is known.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::super::directory::{BACKUP_FILE, LOG_FILE, MANIFEST_FILE};
use super::super::events::{EventSink, JobEvent};
use super::super::retry::{RetryPolicy, with_retry};
use super::super::{BackupDirectory, BackupError, CopyState, JobLog};
use super::stage::StagedBackup;
use crate::target::{
    self, ObjectKey, PutMode, PutOptions, RetryStatus, TargetError, TargetErrorKind,
};

/// One place a job sends its backup to.
#[derive(Debug, Clone)]
pub struct Destination {
    /// What the user called it: a configured target's name, or the location.
    pub name: String,
    pub dir: BackupDirectory,
    /// The destination is a local folder on the staging disk: hand it the staged file (a hard
    /// link where possible) instead of streaming it.
    pub local: bool,
}

/// Reports a copy's state as it moves on (to `verifying` once the backup file is sent).
pub(crate) type CopyStateFn = Arc<dyn Fn(CopyState) + Send + Sync>;

/// What a copy needs besides its destination.
#[derive(Clone)]
pub(crate) struct CopyJob {
    pub staged: Arc<StagedBackup>,
    /// The numbered folder on this destination.
    pub folder: String,
    pub retry: RetryPolicy,
    pub events: EventSink,
    /// The job's log, uploaded beside the backup.
    pub log: JobLog,
    /// Log a progress line every this many percent (0: never).
    pub percentage: u8,
    pub on_state: CopyStateFn,
    /// Counts the attempts made (for the job record).
    pub attempts: Arc<AtomicU32>,
    pub bytes_sent: Arc<AtomicU64>,
}

/// Sends the staged backup, its manifest and the job's log so far to `dest`, each verified.
pub(crate) async fn send_copy(dest: &Destination, job: &CopyJob) -> Result<(), BackupError> {
    let staged = &job.staged;
    let dir = &dest.dir;
    let bak = dir.object(&job.folder, BACKUP_FILE)?;
    let what = format!("{}: {}", dest.name, dir.describe(&bak));
    let (backup_path, manifest_path) = (staged.backup_path(), staged.manifest_path());
    // How the connection is protected (an SMB session: signed, encrypted), where the target
    // says; a failure to connect is reported by the upload below, with its retries.
    if let Ok(Some(connection)) = dir.target().connection().await {
        job.events.info(format!("{}: {connection}", dest.name));
    }
    with_retry(
        &job.retry,
        &format!("upload to {what}"),
        &job.events,
        |_| {
            job.attempts.fetch_add(1, Ordering::Relaxed);
            ensure_object(dest, &bak, &backup_path, job, true)
        },
    )
    .await?;
    job.events.info(format!(
        "{}: {} verified ({} bytes, SHA-256 {})",
        dest.name,
        dir.describe(&bak),
        staged.manifest.backup_size,
        staged.manifest.backup_sha256
    ));

    let manifest_key = dir.object(&job.folder, MANIFEST_FILE)?;
    with_retry(
        &job.retry,
        &format!("upload to {}", dir.describe(&manifest_key)),
        &job.events,
        |_| ensure_object(dest, &manifest_key, &manifest_path, job, false),
    )
    .await?;

    let log_key = dir.object(&job.folder, LOG_FILE)?;
    let log_text = job.log.render();
    with_retry(
        &job.retry,
        &format!("upload to {}", dir.describe(&log_key)),
        &job.events,
        |_| async {
            target::put_bytes(
                dir.target(),
                &log_key,
                log_text.as_bytes(),
                PutMode::Overwrite,
            )
            .await
            .map(|_| ())
        },
    )
    .await?;
    Ok(())
}

/// Makes `key` hold exactly the staged file at `path`: leaves a verified copy alone, uploads
/// otherwise, then verifies. A copy that fails verification is deleted and the error is
/// temporary, so the retry sends it again.
async fn ensure_object(
    dest: &Destination,
    key: &ObjectKey,
    path: &Path,
    job: &CopyJob,
    report_progress: bool,
) -> Result<(), TargetError> {
    let target = dest.dir.target();
    let (size, sha256) = if report_progress {
        (
            job.staged.manifest.backup_size,
            job.staged.manifest.backup_sha256.clone(),
        )
    } else {
        file_digest(path).await.map_err(|e| {
            TargetError::from_io(&target.location(), Some(key), e)
                .with_retry(RetryStatus::Permanent)
                .context(format!("reading the staged {}", path.display()))
        })?
    };
    match target.stat(key).await {
        Ok(meta) if meta.size == size => {
            if report_progress {
                (job.on_state)(CopyState::Verifying);
            }
            if object_digest(dest, key, meta.sha256.as_deref()).await? == sha256 {
                job.events.info(format!(
                    "{}: {} is already there and verified; not sent again",
                    dest.name,
                    dest.dir.describe(key)
                ));
                if report_progress {
                    job.bytes_sent.store(size, Ordering::Relaxed);
                    job.events.emit(JobEvent::Progress {
                        target: dest.name.clone(),
                        bytes: size,
                        total: size,
                    });
                }
                return Ok(());
            }
            return Err(different_content(dest, key));
        }
        Ok(_) => return Err(different_content(dest, key)),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }

    if dest.local {
        let meta = target.put_file(key, path, PutMode::Create).await?;
        if report_progress {
            progress_callback(dest, job, size)(size);
        }
        if meta.same_file_as_source && meta.size == size {
            // The object is the staged file itself, whose every chunk the read-back
            // authenticated: reading it again would read the same bytes.
            if report_progress {
                (job.on_state)(CopyState::Verifying);
                job.events.info(format!(
                    "{}: {} is the staged copy itself (a hard link), authenticated when staged",
                    dest.name,
                    dest.dir.describe(key)
                ));
            }
            return Ok(());
        }
    } else {
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            TargetError::from_io(&target.location(), Some(key), e)
                .with_retry(RetryStatus::Permanent)
                .context(format!("opening the staged {}", path.display()))
        })?;
        let file = tokio::io::BufReader::with_capacity(1024 * 1024, file);
        let mut body = ProgressReader {
            inner: file,
            sent: 0,
            on_progress: if report_progress {
                Some(progress_callback(dest, job, size))
            } else {
                None
            },
        };
        target
            .put(key, &mut body, PutOptions::create().with_length(size))
            .await?;
    }

    if report_progress {
        (job.on_state)(CopyState::Verifying);
    }
    let meta = target.stat(key).await?;
    let digest = object_digest(dest, key, meta.sha256.as_deref()).await?;
    if meta.size != size || digest != sha256 {
        let _ = target.delete(key).await;
        return Err(TargetError::new(
            TargetErrorKind::InvalidData,
            &target.location(),
            Some(key),
            format!(
                "the copy read back is {} bytes with SHA-256 {digest}, the staged file is {size} bytes with SHA-256 {sha256}; removed it, sending again",
                meta.size
            ),
        )
        .with_retry(RetryStatus::Temporary));
    }
    Ok(())
}

fn different_content(dest: &Destination, key: &ObjectKey) -> TargetError {
    TargetError::new(
        TargetErrorKind::AlreadyExists,
        &dest.dir.location(),
        Some(key),
        "an object with different content is already there and a published object is never overwritten; \
         move it away (it is not listed in the history) and run the job again",
    )
}

/// The SHA-256 of an object on the destination: the service's own checksum when the target
/// reports one computed over the stored bytes, else a full read-back.
async fn object_digest(
    dest: &Destination,
    key: &ObjectKey,
    server_sha256: Option<&str>,
) -> Result<String, TargetError> {
    let target = dest.dir.target();
    if target.capabilities().server_sha256
        && let Some(sha) = server_sha256
    {
        return Ok(sha.to_ascii_lowercase());
    }
    let mut reader = target.get(key).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(|e| TargetError::from_io(&target.location(), Some(key), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

async fn file_digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Reports bytes sent: a progress event per MiB and a log line every `percentage` percent.
fn progress_callback(dest: &Destination, job: &CopyJob, total: u64) -> ProgressFn {
    let (name, events) = (dest.name.clone(), job.events.clone());
    let step = u64::from(job.percentage);
    let last_event = AtomicU64::new(0);
    let last_step = AtomicU64::new(0);
    let bytes_sent = job.bytes_sent.clone();
    Arc::new(move |sent: u64| {
        bytes_sent.store(sent, Ordering::Relaxed);
        if sent == total || sent - last_event.load(Ordering::Relaxed) >= 1024 * 1024 {
            last_event.store(sent, Ordering::Relaxed);
            events.emit(JobEvent::Progress {
                target: name.clone(),
                bytes: sent,
                total,
            });
        }
        if step > 0 && total > 0 {
            let percent = sent.saturating_mul(100) / total;
            let reached = percent / step * step;
            if reached > last_step.load(Ordering::Relaxed) {
                last_step.store(reached, Ordering::Relaxed);
                events.info(format!("{name}: {reached}% sent ({sent} of {total} bytes)"));
            }
        }
    })
}

/// Counts the bytes read through it and reports them.
struct ProgressReader<R> {
    inner: R,
    sent: u64,
    on_progress: Option<ProgressFn>,
}

impl<R: AsyncRead + Unpin> AsyncRead for ProgressReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let n = (buf.filled().len() - before) as u64;
            if n > 0 {
                self.sent += n;
                let sent = self.sent;
                if let Some(report) = &self.on_progress {
                    report(sent);
                }
            }
        }
        poll
    }
}
