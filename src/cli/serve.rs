//! `coid serve`: bind the listeners (the dict proxy socket first, then LMTP), then serve
//! both, and run the push worker, until SIGTERM/SIGINT (a second signal exits at once).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::build::{build_pipeline, build_push, load_config};
use super::exit;
use crate::config::{Config, socket_mode};
use crate::dict::webpush::WebPush;
use crate::dict::{self, Attributes, DictContext};
use crate::lmtp::Limits;
use crate::lmtp::connection::ConnectionContext;
use crate::server::{self, Listener, ShutdownPolicy};
use crate::store::Store;

/// Grace period for transactions in flight at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Runs the daemon.
pub fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("coid: cannot start runtime: {err}");
            return exit::SOFTWARE;
        }
    };
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> u8 {
    let (pipeline, store) = match build_pipeline(&config) {
        Ok(built) => built,
        Err(code) => return code,
    };
    let (webpush, worker) = match build_push(&config, &pipeline) {
        Ok(Some(push)) => (Some(push.webpush), Some(push.worker)),
        Ok(None) => (None, None),
        Err(code) => return code,
    };
    if let Err(err) = std::fs::create_dir_all(config.spool_dir()) {
        eprintln!(
            "coid: cannot create {}: {err}",
            config.spool_dir().display()
        );
        return exit::TEMPFAIL;
    }
    // The dict socket first: once LMTP accepts, everything is up.
    let bound = async {
        let dict = bind_dict(&config)?;
        Ok::<_, String>((bind(&config).await?, dict))
    };
    let (listeners, dict_listeners) = match bound.await {
        Ok(bound) => bound,
        Err(message) => {
            eprintln!("coid: {message}");
            return exit::CONFIG;
        }
    };
    let ctx = Arc::new(context(&config, Arc::clone(&pipeline)));
    let dict_ctx = Arc::new(dict_context(&config, store, webpush));
    tracing::info!(listeners = ?config.lmtp.tcp, unix = %config.lmtp.unix_socket, dict = %config.dict.socket, backend = %config.delivery.backend, "coid serving");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop_tx.send(true);
    });
    let policy = ShutdownPolicy {
        grace: SHUTDOWN_GRACE,
    };
    tokio::join!(
        server::run(
            listeners,
            ctx,
            config.lmtp.max_connections,
            stopped(stop_rx.clone()),
            policy.clone(),
        ),
        server::run(
            dict_listeners,
            dict_ctx,
            config.dict.max_connections,
            stopped(stop_rx.clone()),
            policy,
        ),
        async move {
            if let Some(worker) = worker {
                worker.run(stop_rx).await;
            }
        },
    );
    // Pushes of the last messages are in the queue before coid exits.
    pipeline.flush_pushes().await;
    tracing::info!("coid stopped");
    exit::OK
}

/// Resolves once the stop signal has been given.
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The dict proxy's settings from the config; with `webpush`, the WebPush entries.
pub fn dict_context(config: &Config, store: Store, webpush: Option<WebPush>) -> DictContext {
    let d = &config.dict;
    let mut attributes = Attributes::new(store, &config.users, &config.coi);
    if let Some(webpush) = webpush {
        attributes = attributes.with_webpush(webpush);
    }
    DictContext {
        attributes: Arc::new(attributes),
        limits: dict::Limits {
            max_line: d.max_line_length,
            max_transactions: d.max_transactions,
            max_changes: d.max_changes,
            max_pending_bytes: d.max_pending_bytes,
            max_rows: d.max_iterate_rows,
        },
        idle_timeout: Duration::from_secs(d.idle_timeout_secs),
    }
}

/// The dict proxy's socket, if configured; its directory is created if missing.
fn bind_dict(config: &Config) -> Result<Vec<Listener>, String> {
    if config.dict.socket.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(dir) = Path::new(&config.dict.socket).parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let listener = unix_listener(&config.dict.socket, &config.dict.socket_mode)?;
    Ok(vec![listener])
}

/// The per-connection settings from the config.
pub fn context(config: &Config, pipeline: Arc<crate::pipeline::Pipeline>) -> ConnectionContext {
    ConnectionContext {
        pipeline,
        limits: Limits {
            max_line: config.lmtp.max_line_length,
            max_message_size: config.lmtp.max_message_size,
            max_recipients: config.lmtp.max_recipients,
        },
        hostname: config.lmtp.hostname.clone(),
        idle_timeout: Duration::from_secs(config.lmtp.idle_timeout_secs),
        spool_threshold: config.lmtp.spool_threshold,
        spool_dir: config.spool_dir(),
    }
}

async fn bind(config: &Config) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::new();
    for addr in &config.lmtp.tcp {
        listeners.push(
            Listener::tcp(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        );
    }
    if !config.lmtp.unix_socket.is_empty() {
        let lmtp = &config.lmtp;
        listeners.push(unix_listener(&lmtp.unix_socket, &lmtp.unix_socket_mode)?);
    }
    Ok(listeners)
}

/// A unix socket listener at `path` with the config's `mode` (validated octal).
fn unix_listener(path: &str, mode: &str) -> Result<Listener, String> {
    let mode = socket_mode(mode).unwrap_or(0o660);
    Listener::unix(Path::new(path), mode).map_err(|e| format!("cannot listen on {path}: {e}"))
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits the process at once.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return std::future::pending().await;
    };
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
}
