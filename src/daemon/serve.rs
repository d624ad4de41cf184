//! The running service, inside the runtime: open the state store and the push parts,
//! build the session contexts, serve LMTP, the dict proxy and the metrics listener,
//! start the push worker on its own thread (`crate::push::thread`), tell systemd
//! READY=1 (a stop asked for before that ends the start-up without serving) — then
//! act on signals until a stop: SIGHUP
//! swaps in contexts from the re-read config (sessions in flight keep theirs),
//! SIGTERM/SIGINT drain within `[service] shutdown_grace_secs` and exit 0.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::signals::{Request, Signals};
use super::sockets::{Bound, Sockets};
use super::systemd;
use crate::app::AppError;
use crate::app::contexts::{self, Contexts, Fixed};
use crate::config::Config;
use crate::metrics::http::Health;
use crate::push::thread::PushThread;
use crate::server::{self, Listener, ShutdownPolicy};

/// Serves until stopped.
///
/// # Errors
/// Start-up failed, or a listening socket or the signal handlers were unusable.
pub async fn serve(path: PathBuf, config: Config, sockets: Sockets) -> Result<(), AppError> {
    // Installed before the start-up's slow steps (a store another process holds
    // locked waits out the busy timeout): a stop sent meanwhile (systemctl stop, the
    // start timeout) is then heard and logged instead of killing coid without a word.
    let mut signals = Signals::install()
        .map_err(|err| AppError::Host(format!("cannot install signal handlers: {err}")))?;
    tracing::info!(state = %config.state.dir.display(), "coid starting");
    // On a blocking thread: opening the store blocks (PostgreSQL's blocking client
    // even refuses to run on an async thread).
    let for_start = config.clone();
    let (fixed, worker, contexts) = tokio::task::spawn_blocking(move || start(&for_start))
        .await
        .map_err(|err| AppError::Internal(format!("start-up task failed: {err}")))??;
    if signals.stop_pending().await {
        // Nothing was accepted yet: nothing to drain.
        tracing::info!("stop requested during start-up: exiting without serving");
        return Ok(());
    }
    run(path, config, sockets, signals, fixed, worker, contexts).await
}

type Started = (Fixed, Option<crate::push::worker::Worker>, Contexts);

/// Store, push parts, spool directory (swept) and the first contexts.
fn start(config: &Config) -> Result<Started, AppError> {
    let started = SystemTime::now();
    let (fixed, worker) = Fixed::open(config)?;
    let spool = config.spool_dir();
    std::fs::create_dir_all(&spool)
        .map_err(|e| AppError::Files(format!("cannot create {}: {e}", spool.display())))?;
    sweep_spool(&spool, started);
    let contexts = contexts::build(config, &fixed)?;
    Ok((fixed, worker, contexts))
}

/// Removes what a crash left in the spool (only this coid's spool directory, only
/// files no live transaction owns: see [`crate::spool::sweep`]) and says how much.
/// Trouble here is logged; it does not keep coid from serving.
fn sweep_spool(spool: &std::path::Path, started: SystemTime) {
    match crate::spool::sweep(spool, started) {
        Ok(swept) => tracing::info!(
            dir = %spool.display(),
            removed_files = swept.removed_files,
            removed_bytes = swept.removed_bytes,
            live_files = swept.live_files,
            "spool swept"
        ),
        Err(err) => {
            tracing::warn!(dir = %spool.display(), error = %err, "cannot sweep the spool");
        }
    }
}

async fn run(
    path: PathBuf,
    config: Config,
    sockets: Sockets,
    mut signals: Signals,
    fixed: Fixed,
    worker: Option<crate::push::worker::Worker>,
    contexts: Contexts,
) -> Result<(), AppError> {
    let host =
        |err: std::io::Error| AppError::Host(format!("cannot use a listening socket: {err}"));
    let (lmtp, dict) = (
        listeners(sockets.lmtp).map_err(host)?,
        listeners(sockets.dict).map_err(host)?,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (lmtp_tx, lmtp_rx) = watch::channel(contexts.lmtp);
    let (dict_tx, dict_rx) = watch::channel(contexts.dict);
    let policy = ShutdownPolicy {
        grace: Duration::from_secs(config.service.shutdown_grace_secs),
    };
    let mut tasks = tokio::task::JoinSet::new();
    let lmtp_max = config.lmtp.max_connections;
    tasks.spawn(server::run(
        lmtp,
        lmtp_rx,
        lmtp_max,
        stopped(stop_rx.clone()),
        policy.clone(),
    ));
    let dict_max = config.dict.max_connections;
    tasks.spawn(server::run(
        dict,
        dict_rx,
        dict_max,
        stopped(stop_rx.clone()),
        policy,
    ));
    // Queue depth and tokens are counted even with every kind of push off: tokens
    // are stored either way.
    fixed.recorder.watch_push_queue(fixed.store.clone());
    // On a thread of its own (its CPU no longer takes turns with the sessions' on
    // their runtime), at `[push] worker_nice`; `[push] worker_threads` - 1 more
    // encrypt beside it in a backlog.
    let push_thread = match worker {
        Some(worker) => Some(
            PushThread::spawn(worker, stop_rx.clone(), config.push.worker_nice)
                .map_err(|err| AppError::Host(format!("cannot start the push worker: {err}")))?,
        ),
        None => None,
    };
    let mut metrics_task = tokio::task::JoinSet::new();
    let health = metrics_listener(sockets.metrics, &fixed.recorder, &mut metrics_task);
    // `/health` says so before the log does: whoever read "coid serving" finds it.
    health.set(Health::Serving);
    tracing::info!(
        lmtp = ?config.lmtp.tcp, unix = %config.lmtp.unix_socket.display(),
        dict = %config.dict.socket.display(),
        backend = %config.delivery.backend, metrics = ?config.metrics.listen, "coid serving"
    );
    tasks.spawn(super::store_health::watch_store(
        fixed.store.clone(),
        health.health.clone(),
        stop_rx.clone(),
    ));
    systemd::ready("serving");
    systemd::spawn_watchdog();
    loop {
        match signals.next().await {
            Request::Stop => break,
            Request::Reload => {
                systemd::reloading();
                if let Some(c) = reload(&path, &config, &fixed) {
                    lmtp_tx.send_replace(c.lmtp);
                    dict_tx.send_replace(c.dict);
                }
                systemd::ready("serving");
            }
        }
    }
    tracing::info!("stop requested: draining");
    systemd::stopping("draining");
    health.set(Health::Stopping);
    signals.arm_second_stop();
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    if let Some(push_thread) = push_thread {
        push_thread.finished().await;
    }
    if let Some(hook) = &fixed.push {
        // Pushes of the last messages are in the queue before coid exits.
        hook.flush().await;
    }
    health.done();
    while metrics_task.join_next().await.is_some() {}
    tracing::info!("coid stopped");
    Ok(())
}

/// One reload; `None` (and the old contexts stay) when the new config is refused.
fn reload(path: &std::path::Path, started: &Config, fixed: &Fixed) -> Option<Contexts> {
    match contexts::reload(path, started, fixed) {
        Ok(contexts) => {
            tracing::info!(config = %path.display(), "reloaded: new sessions use the new config");
            fixed.recorder.reload(true);
            Some(contexts)
        }
        Err(err) => {
            tracing::error!(config = %path.display(), error = %err, "reload refused: the running config stays");
            fixed.recorder.reload(false);
            None
        }
    }
}

/// Registers bound sockets with the runtime.
fn listeners(bound: Vec<Bound>) -> std::io::Result<Vec<Listener>> {
    bound
        .into_iter()
        .map(|b| match b {
            Bound::Tcp(l) => Listener::from_std_tcp(l),
            Bound::Unix(l, path) => Listener::from_std_unix(l, path),
        })
        .collect()
}

/// Resolves once the stop signal has been given.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Starts the metrics listener, if configured; it serves `/health` from the returned
/// handle and stops when the handle's `done()` is called (after the drain, so
/// `/health` says "stopping" meanwhile).
fn metrics_listener(
    listener: Option<std::net::TcpListener>,
    recorder: &crate::metrics::Recorder,
    tasks: &mut tokio::task::JoinSet<()>,
) -> HealthHandle {
    let (health, health_rx) = watch::channel(Health::Starting);
    let (done, done_rx) = watch::channel(false);
    if let Some(listener) = listener {
        match Listener::from_std_tcp(listener) {
            Ok(Listener::Tcp(listener)) => {
                tasks.spawn(crate::metrics::http::serve(
                    listener,
                    recorder.clone(),
                    health_rx,
                    stopped(done_rx),
                ));
            }
            Ok(Listener::Unix(..)) => {}
            Err(err) => tracing::error!(error = %err, "metrics listener unusable; no /metrics"),
        }
    }
    HealthHandle { health, done }
}

/// What `/health` says, and the metrics listener's end.
struct HealthHandle {
    health: watch::Sender<Health>,
    done: watch::Sender<bool>,
}

impl HealthHandle {
    fn set(&self, health: Health) {
        self.health.send_replace(health);
    }

    fn done(&self) {
        self.done.send_replace(true);
    }
}
