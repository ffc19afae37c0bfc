//! The measuring client of `cargo xtask bench-serve`: starts one backup through
//! `sstore serve`'s API and waits for it, while N other clients each poll `/api/v1/status`
//! every 200 ms (each starting at its own point of that period) and hold `/api/v1/events`
//! open. Prints one `LOAD {...}` JSON line: the backup's bytes, seconds and rate, and the
//! status requests' count, failures and latency percentiles (ms) while the backup runs, and
//! the p99 of those made before it (while 2N connections open at once), apart.
//!
//! usage: service_load --url http://127.0.0.1:PORT --clients N
//! The API token is read from SSTORE_BENCH_TOKEN.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tokio::sync::Mutex;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Result<String> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .with_context(|| format!("missing {flag}"))
    };
    let url = value("--url")?;
    let clients: usize = value("--clients")?.parse()?;
    let token = std::env::var("SSTORE_BENCH_TOKEN").context("set SSTORE_BENCH_TOKEN")?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2 + 4)
        .build()?;
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let warmup = Arc::new(Mutex::new(Vec::<f64>::new()));
    let failures = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let backup_running = Arc::new(AtomicBool::new(false));
    for n in 0..clients {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        let (events, done_events) = (events.clone(), done.clone());
        let stream = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let (client, url, token) = stream;
            let Ok(mut response) = client
                .get(format!("{url}/api/v1/events"))
                .bearer_auth(&token)
                .send()
                .await
            else {
                return;
            };
            while !done_events.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), response.chunk()).await {
                    Ok(Ok(Some(_))) => {
                        events.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => break,
                    Err(_) => {}
                }
            }
        }));
        let (latencies, failures, done) = (latencies.clone(), failures.clone(), done.clone());
        let (warmup, backup_running) = (warmup.clone(), backup_running.clone());
        // Pollers start spread over one polling period, as independent clients would.
        let phase = Duration::from_millis(200 * n as u64 / clients as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(phase).await;
            while !done.load(Ordering::Relaxed) {
                let during_backup = backup_running.load(Ordering::Relaxed);
                let started = Instant::now();
                let ok = client
                    .get(format!("{url}/api/v1/status"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                } else if during_backup {
                    latencies.lock().await.push(ms);
                } else {
                    // Connecting, and the seconds before the backup, are not what is measured.
                    warmup.lock().await.push(ms);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }));
    }
    // Let the clients connect, then run the backup.
    tokio::time::sleep(Duration::from_secs(if clients > 0 { 3 } else { 0 })).await;
    backup_running.store(true, Ordering::Relaxed);
    let started: Value = client
        .post(format!("{url}/api/v1/jobs"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"kind": "backup"}))
        .send()
        .await?
        .json()
        .await?;
    let id = started["id"].as_str().context("no job id")?.to_owned();
    let job = loop {
        let job: Value = client
            .get(format!("{url}/api/v1/jobs/{id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let state = job["state"].as_str().unwrap_or_default().to_owned();
        if matches!(
            state.as_str(),
            "succeeded" | "partially succeeded" | "failed" | "cancelled" | "interrupted"
        ) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    if job["state"] != "succeeded" {
        bail!("the backup did not succeed: {job}");
    }
    let bytes = job["bytes"].as_u64().unwrap_or(0);
    let seconds = job["seconds"].as_f64().unwrap_or(f64::NAN);
    let sorted = |list: &Mutex<Vec<f64>>| {
        // Every client has ended: nothing else holds the lock.
        let mut list = list.try_lock().map(|l| l.clone()).unwrap_or_default();
        list.sort_by(f64::total_cmp);
        list
    };
    let (all, before) = (sorted(&latencies), sorted(&warmup));
    let percentile = |list: &[f64], p: f64| -> f64 {
        if list.is_empty() {
            return 0.0;
        }
        list[((list.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "LOAD {{\"clients\":{clients},\"backup_bytes\":{bytes},\"backup_seconds\":{seconds:.3},\"backup_mib_s\":{:.1},\"requests\":{},\"failures\":{},\"events\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"warmup_p99_ms\":{:.2}}}",
        bytes as f64 / 1_048_576.0 / seconds,
        all.len(),
        failures.load(Ordering::Relaxed),
        events.load(Ordering::Relaxed),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        percentile(&before, 0.99)
    );
    Ok(())
}
