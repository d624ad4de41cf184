//! The local HTTP listener (`[metrics] listen`): `GET /metrics` (the exposition,
//! OpenMetrics text) and `GET /health` (200 while serving, 503 before and while
//! stopping, for a load balancer or a systemd/monitoring probe). Nothing else: other
//! paths are 404, other methods 405 with `Allow: GET` (RFC 9110 §15.5.6).
//!
//! HTTP/1 only, with hyper; no keep-alive (a scrape is one request). Bounded like the
//! mail listeners: at most [`Limits::max_connections`] at once (the permit is taken
//! before `accept()`), a header read timeout, a cap on header bytes, and a deadline
//! for the whole connection. Bad requests are hyper's to answer (400) and end only
//! their own connection. It has no authentication: bind it to loopback.
//!
//! Routing ([`route`]) is pure; only [`serve`] and `connection` touch sockets.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::Recorder;

/// What `/health` reports; the serve loop sends changes through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not ready yet (listeners, store, policy being set up): 503 `starting`.
    Starting,
    /// Accepting mail: 200 `ok`.
    Serving,
    /// Shutting down (draining sessions): 503 `stopping`.
    Stopping,
    /// Serving, but the state store fails (every message is answered 4xx and
    /// Postfix retries; a load balancer should send mail elsewhere): 503
    /// `degraded: state store`.
    Degraded,
}

/// The listener's bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel backlog.
    pub max_connections: usize,
    /// Time a client gets to send its request head.
    pub header_read_timeout: Duration,
    /// Time one connection may take from accept to the end of the response.
    pub connection_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 16,
            header_read_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(30),
        }
    }
}

/// Most bytes hyper buffers for a request head (its minimum allowed is 8 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`.
    Metrics,
    /// `GET /health`.
    Health,
    /// A known path with another method.
    MethodNotAllowed,
    /// Any other path.
    NotFound,
}

/// Routes a request by method and path (the query is ignored).
pub fn route(method: &Method, path: &str) -> Route {
    let route = match path {
        "/metrics" => Route::Metrics,
        "/health" => Route::Health,
        _ => return Route::NotFound,
    };
    if method == Method::GET {
        route
    } else {
        Route::MethodNotAllowed
    }
}

/// Serves `/metrics` and `/health` on `listener` with [`Limits::default`] until `stop`
/// resolves. `/health` answers from `health`'s current value, so keep this running
/// (with [`Health::Stopping`]) while the mail listeners drain, and resolve `stop`
/// after. Connections still open then are cut off.
pub async fn serve(
    listener: TcpListener,
    recorder: Recorder,
    health: watch::Receiver<Health>,
    stop: impl Future<Output = ()>,
) {
    serve_with(listener, recorder, health, stop, Limits::default()).await;
}

/// [`serve`] with explicit bounds.
pub async fn serve_with(
    listener: TcpListener,
    recorder: Recorder,
    health: watch::Receiver<Health>,
    stop: impl Future<Output = ()>,
    limits: Limits,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics and health listener running");
    }
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let (health, recorder) = (health.clone(), recorder.clone());
                connections.spawn(async move {
                    connection(stream, recorder, health, limits).await;
                    drop(permit);
                });
            }
            Err(err) => {
                // EMFILE and the like: wait a little instead of spinning.
                tracing::warn!(error = %err, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while connections.try_join_next().is_some() {}
    }
    tracing::debug!("metrics and health listener stopped");
}

/// Serves one connection, one request, within the connection deadline.
async fn connection(
    stream: TcpStream,
    recorder: Recorder,
    health: watch::Receiver<Health>,
    limits: Limits,
) {
    let service = service_fn(move |request: Request<Incoming>| {
        let (health, recorder) = (*health.borrow(), recorder.clone());
        async move { Ok::<_, Infallible>(respond(&request, recorder, health).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(limits.connection_timeout, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::debug!(error = %err, "metrics listener: connection failed"),
        Err(_) => tracing::debug!("metrics listener: connection took too long; closed"),
    }
}

/// The answer to one request.
async fn respond(
    request: &Request<Incoming>,
    recorder: Recorder,
    health: Health,
) -> Response<Full<Bytes>> {
    match route(request.method(), request.uri().path()) {
        Route::Metrics => metrics(recorder).await,
        Route::Health => match health {
            Health::Serving => text(StatusCode::OK, "ok\n"),
            Health::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Health::Stopping => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
            Health::Degraded => text(StatusCode::SERVICE_UNAVAILABLE, "degraded: state store\n"),
        },
        Route::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        Route::MethodNotAllowed => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            response
        }
    }
}

/// The exposition, encoded on the blocking pool (it counts the push queue in SQLite).
async fn metrics(recorder: Recorder) -> Response<Full<Bytes>> {
    match tokio::task::spawn_blocking(move || recorder.encode()).await {
        Ok(Ok(body)) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(super::CONTENT_TYPE));
            response
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "metrics: cannot encode");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n")
        }
        Err(err) => {
            tracing::error!(error = %err, "metrics: encoding task failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n")
        }
    }
}

/// A short plain-text response.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
