//! Faults injected by a decorator around the real local target: the job fails at the step that
//! failed, says so, and the history tells the truth.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sstore_core::backup::{
    BackupDirectory, BackupJob, Destination, EventSink, JobStatus, LOG_FILE, TransferOptions,
    run_backup, run_job, run_verify,
};
use sstore_core::target::{
    Capabilities, ObjectKey, ObjectMeta, ObjectReader, PutBody, PutMode, PutOptions, Readiness,
    Target, TargetError, TargetErrorKind,
};
use sstore_target_local::LocalTarget;
use sstore_tests::*;

/// The local target, except that creating an object whose name ends with `fail_suffix` fails.
#[derive(Debug)]
struct FailingPuts {
    inner: LocalTarget,
    fail_suffix: &'static str,
}

impl FailingPuts {
    fn check(&self, key: &ObjectKey, mode: PutMode) -> Result<(), TargetError> {
        let _ = mode;
        if key.as_str().ends_with(self.fail_suffix) {
            return Err(TargetError::new(
                TargetErrorKind::NoSpace,
                &self.location(),
                Some(key),
                "no space left (injected)",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Target for FailingPuts {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(
        &self,
        key: &ObjectKey,
        body: PutBody<'_>,
        options: PutOptions,
    ) -> Result<ObjectMeta, TargetError> {
        self.check(key, options.mode)?;
        self.inner.put(key, body, options).await
    }
    async fn put_file(
        &self,
        key: &ObjectKey,
        path: &Path,
        mode: PutMode,
    ) -> Result<ObjectMeta, TargetError> {
        self.check(key, mode)?;
        self.inner.put_file(key, path, mode).await
    }
    async fn get(&self, key: &ObjectKey) -> Result<ObjectReader, TargetError> {
        self.inner.get(key).await
    }
    async fn stat(&self, key: &ObjectKey) -> Result<ObjectMeta, TargetError> {
        self.inner.stat(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, TargetError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &ObjectKey) -> Result<(), TargetError> {
        self.inner.delete(key).await
    }
    async fn readiness(&self) -> Result<Readiness, TargetError> {
        self.inner.readiness().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_at_any_publishing_step_is_recorded_as_failed() {
    for (step, suffix) in [
        ("backup file", "sstorebackup.bak"),
        ("manifest", "sstoremanifest.json"),
        ("log", LOG_FILE),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let store_path = tmp.path().join("store.db");
        populate(&store_path, 3, 2);
        let root = tmp.path().join("backups");
        let target = FailingPuts {
            inner: LocalTarget::new(&root),
            fail_suffix: suffix,
        };
        let dir = BackupDirectory::new(Arc::new(target), root.join(".sstore-staging"));
        let options = fast_options();
        let err = run_backup(
            &store_path,
            &dir,
            &passphrase(),
            &options,
            &EventSink::default(),
        )
        .await
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(suffix) && message.contains("no space left"),
            "{step}: {message}"
        );
        let history = dir.load_history().await.unwrap();
        assert_eq!(history.entries.len(), 1, "{step}");
        let entry = &history.entries[0];
        assert_eq!(entry.status, JobStatus::Failed, "{step}");
        assert!(
            entry.failure_message.as_deref().unwrap().contains(suffix),
            "{step}"
        );
        assert!(history.newest_successful_backup().is_none(), "{step}");
        // The staged copy stays for the next run, which resumes the transfer: the same backup
        // ends up published, verified and listed as succeeded.
        let mut staged = staging_entries(&root);
        staged.sort();
        let mut expected = vec![std::ffi::OsString::from(&entry.id), "sstore.lock".into()];
        expected.sort();
        assert_eq!(staged, expected, "{step}");
        let healthy = local_directory(&root);
        let job = BackupJob {
            store_path: store_path.clone(),
            staging: healthy.staging().to_owned(),
            destinations: vec![Destination {
                name: "backups".into(),
                dir: healthy.clone(),
                local: true,
            }],
            journal: None,
            transfer: TransferOptions::default(),
            events: EventSink::default(),
            resume_only: true,
            force: false,
            stop: Default::default(),
            requested_by: None,
        };
        let report = run_job(&job, None, &options).await.unwrap();
        let resumed = report.resumed.unwrap();
        assert!(resumed.succeeded(), "{step}: {:?}", resumed.error);
        assert!(report.new.is_none());
        let history = healthy.load_history().await.unwrap();
        assert_eq!(history.entries.len(), 1, "{step}");
        assert_eq!(history.entries[0].status, JobStatus::Succeeded, "{step}");
        assert_eq!(history.entries[0].id, entry.id, "{step}");
        assert_eq!(staging_entries(&root), ["sstore.lock"], "{step}");
        run_verify(&healthy, None, &passphrase()).await.unwrap();
        // Nothing left to resume.
        let err = run_job(&job, None, &options).await.unwrap_err();
        assert!(err.to_string().contains("nothing to resume"), "{err}");
    }
}
