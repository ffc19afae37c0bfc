//! Starting and stopping the service: secrets, jobs, schedules, the key watcher, the API on
//! its address (TLS unless told otherwise, and never plain on a non-loopback address without
//! `--insecure-listen`), and a clean stop on SIGTERM or SIGINT (no new job starts; a running
//! transfer stops at a safe point and is resumed at the next start; a second SIGINT exits at
//! once).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sstore_core::backup::JobsStatus;
use sstore_core::config::Config;
use sstore_core::target::Registry;

use crate::api::AppState;
use crate::auth::{
    AuditLog, Authenticator, LimiterConfig, LoginLimiter, OperatorStore, SessionConfig, Sessions,
    paths,
};
use crate::error::ServiceError;
use crate::jobs::{JobManager, Runtime};
use crate::readiness::{self, Readiness};
use crate::scheduler::Scheduler;
use crate::secrets::Secrets;

/// The default address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";

/// How long a shutdown waits for running jobs to reach a safe point.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What `sstore serve` was given.
pub struct ServeOptions {
    pub config: Config,
    pub registry: Registry,
    pub store_path: PathBuf,
    /// `--listen`, else `[serve] listen`, else [`DEFAULT_LISTEN`].
    pub listen: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (loopback only, unless `insecure_listen`).
    pub plain_http: bool,
    pub insecure_listen: bool,
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn serve(options: ServeOptions) -> Result<(), ServiceError> {
    let config = options.config;
    let state_dir = paths::state_dir(&config);
    sstore_core::fsutil::create_private_dir_all(&state_dir).map_err(|e| ServiceError::File {
        path: state_dir.clone(),
        reason: e.to_string(),
    })?;
    let listen = options
        .listen
        .or_else(|| config.serve.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let address: SocketAddr = listen.parse().map_err(|_| ServiceError::Listen {
        address: listen.clone(),
        reason: "give ADDRESS:PORT, e.g. 127.0.0.1:7443".into(),
    })?;
    let plain = options.plain_http || config.serve.plain_http;
    let insecure = options.insecure_listen || config.serve.insecure_listen;
    if plain && !address.ip().is_loopback() && !insecure {
        return Err(ServiceError::InsecureListen { address: listen });
    }
    let secrets = Secrets::load(&config.serve)?;
    let auth = Arc::new(authenticator(&config)?);
    let key_every = Duration::from_secs(config.serve.key_check_secs.unwrap_or(30).max(1));
    let runtime = Arc::new(Runtime {
        config,
        registry: options.registry,
        store_path: options.store_path,
        secrets,
        state_dir: state_dir.clone(),
    });
    let jobs = JobManager::new(runtime.clone());
    let readiness = Arc::new(Readiness::default());
    readiness.check_key(&runtime);
    let scheduler = Scheduler::new(jobs.clone());

    resume_interrupted(&jobs).await;
    {
        let readiness = readiness.clone();
        let runtime = runtime.clone();
        tokio::spawn(async move { readiness.refresh(&runtime).await });
    }
    {
        let scheduler = scheduler.clone();
        readiness::spawn_refresher(
            readiness.clone(),
            runtime.clone(),
            key_every,
            move |from, to| {
                scheduler.key_changed(from, to);
            },
        );
    }
    refresh_after_backups(&jobs, &readiness, &runtime);
    scheduler.start();

    let state = Arc::new(AppState {
        jobs: jobs.clone(),
        readiness,
        auth,
        scheduler: scheduler.clone(),
        tls: !plain,
        started: Instant::now(),
        started_at: sstore_core::backup::now_rfc3339(),
    });
    let app = crate::routes(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let stopping = tokio::spawn(stop_on_signal(handle.clone(), jobs.clone(), scheduler));

    if plain {
        println!("sstore serve: listening on http://{address} (plain HTTP)");
        let server = axum_server::bind(address).handle(handle).serve(app);
        server.await.map_err(|e| ServiceError::Listen {
            address: listen.clone(),
            reason: e.to_string(),
        })?;
    } else {
        let hosts = vec![address.ip().to_string()];
        let tls = crate::tls::load_or_generate(
            options
                .tls_cert
                .as_deref()
                .or(runtime.config.serve.tls_cert.as_deref()),
            options
                .tls_key
                .as_deref()
                .or(runtime.config.serve.tls_key.as_deref()),
            &state_dir,
            &hosts,
        )
        .await?;
        println!(
            "sstore serve: listening on https://{address}; TLS certificate {} ({}), SHA-256 fingerprint {}",
            tls.cert_path.display(),
            if tls.generated {
                "self-signed, made by the service"
            } else {
                "given"
            },
            tls.fingerprint
        );
        let server = axum_server::bind_rustls(address, tls.config)
            .handle(handle)
            .serve(app);
        server.await.map_err(|e| ServiceError::Listen {
            address: listen.clone(),
            reason: e.to_string(),
        })?;
    }
    let _ = stopping.await;
    println!("sstore serve: stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT, then stops cleanly; a second SIGINT exits at once.
async fn stop_on_signal(
    handle: axum_server::Handle<SocketAddr>,
    jobs: Arc<JobManager>,
    scheduler: Arc<Scheduler>,
) {
    let why = wait_for_signal().await;
    eprintln!(
        "sstore serve: {why}: stopping (no new job starts; running jobs stop at a safe point and resume at the next start; press Ctrl-C again to exit at once)"
    );
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("sstore serve: second interrupt: exiting now");
            std::process::exit(130);
        }
    });
    scheduler.stop();
    jobs.shut_down(SHUTDOWN_GRACE).await;
    handle.graceful_shutdown(Some(Duration::from_secs(5)));
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "interrupt"
}

/// Backups the journal shows as interrupted (a killed service, a killed CLI run) are
/// resumed, each as a job of its own, requested by `service`.
async fn resume_interrupted(jobs: &Arc<JobManager>) {
    let runtime = jobs.runtime().clone();
    let Ok(status) = JobsStatus::read(&runtime.config.journal()) else {
        return;
    };
    for record in status.interrupted {
        match crate::jobs::plan_resume(&runtime, &record).await {
            Ok((request, plan)) => {
                let view = jobs.enqueue(request, "service", plan);
                eprintln!(
                    "sstore serve: backup {} was interrupted ({}); resuming it as job {}",
                    record.id, record.state, view.id
                );
            }
            Err(why) => eprintln!(
                "sstore serve: backup {} was interrupted but cannot be resumed here: {why}",
                record.id
            ),
        }
    }
}

/// After every backup job (and restore: an overwrite backs up first), the destinations' last
/// successes are read again.
fn refresh_after_backups(
    jobs: &Arc<JobManager>,
    readiness: &Arc<Readiness>,
    runtime: &Arc<Runtime>,
) {
    let mut events = jobs.subscribe();
    let (readiness, runtime) = (readiness.clone(), runtime.clone());
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                // A restore over the live store backs it up first.
                Ok(crate::jobs::ServiceEvent::Job { job })
                    if job.is_finished()
                        && matches!(
                            job.kind,
                            crate::jobs::JobKind::Backup | crate::jobs::JobKind::Restore
                        ) =>
                {
                    readiness.refresh(&runtime).await;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Operators, sessions, login limits and the audit log.
fn authenticator(config: &Config) -> Result<Authenticator, ServiceError> {
    let operators_path = paths::operators_path(config);
    let operators = OperatorStore::open(&operators_path).map_err(|e| ServiceError::File {
        path: operators_path.clone(),
        reason: e.to_string(),
    })?;
    let audit_path = paths::audit_path(config);
    let audit = AuditLog::open(&audit_path).map_err(|e| ServiceError::File {
        path: audit_path.clone(),
        reason: e.to_string(),
    })?;
    Ok(Authenticator {
        operators,
        sessions: Sessions::new(SessionConfig::default()),
        limiter: LoginLimiter::new(LimiterConfig::default()),
        audit: Some(audit),
    })
}
