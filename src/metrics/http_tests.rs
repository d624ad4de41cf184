//! Tests of the metrics and health listener over a real loopback TCP socket, with a
//! raw HTTP/1.1 client so what goes over the wire is what is checked.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::*;

/// Longest any test waits for an answer.
const WAIT: Duration = Duration::from_secs(5);

struct Running {
    addr: SocketAddr,
    recorder: Recorder,
    health: watch::Sender<Health>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

async fn start(limits: Limits) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (health, health_rx) = watch::channel(Health::Starting);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stop_rx.await;
    };
    let recorder = Recorder::new();
    let task = tokio::spawn(serve_with(
        listener,
        recorder.clone(),
        health_rx,
        stopped,
        limits,
    ));
    Running {
        addr,
        recorder,
        health,
        stop,
        task,
    }
}

/// Sends `raw` and reads until the server closes the connection.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("send");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

async fn request(addr: SocketAddr, method: &str, path: &str) -> String {
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    exchange(addr, raw.as_bytes()).await
}

fn status(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn body(answer: &str) -> &str {
    answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

#[test]
fn routes() {
    assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
    assert_eq!(route(&Method::GET, "/health"), Route::Health);
    assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
    assert_eq!(route(&Method::HEAD, "/health"), Route::MethodNotAllowed);
    assert_eq!(route(&Method::GET, "/metrics/"), Route::NotFound);
    assert_eq!(route(&Method::DELETE, "/"), Route::NotFound);
}

#[tokio::test]
async fn metrics_are_served_as_openmetrics_text() {
    let server = start(Limits::default()).await;
    server
        .recorder
        .message_done(crate::metrics::MessageClass::Group, []);
    let answer = request(server.addr, "GET", "/metrics?from=test").await;
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(
        header(&answer, "content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = body(&answer);
    assert!(text.contains("# TYPE coid_messages counter\n"), "{text}");
    assert!(
        text.contains("coid_messages_total{class=\"group\"} "),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[tokio::test]
async fn health_follows_the_watch() {
    let server = start(Limits::default()).await;
    let answer = request(server.addr, "GET", "/health").await;
    assert_eq!(
        status(&answer),
        "HTTP/1.1 503 Service Unavailable",
        "{answer}"
    );
    assert_eq!(body(&answer), "starting\n");
    server.health.send(Health::Serving).expect("listener alive");
    let answer = request(server.addr, "GET", "/health").await;
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert_eq!(body(&answer), "ok\n");
    server
        .health
        .send(Health::Stopping)
        .expect("listener alive");
    let answer = request(server.addr, "GET", "/health").await;
    assert_eq!(
        status(&answer),
        "HTTP/1.1 503 Service Unavailable",
        "{answer}"
    );
    assert_eq!(body(&answer), "stopping\n");
}

#[tokio::test]
async fn unknown_paths_and_other_methods() {
    let server = start(Limits::default()).await;
    let answer = request(server.addr, "GET", "/").await;
    assert_eq!(status(&answer), "HTTP/1.1 404 Not Found", "{answer}");
    for (method, path) in [
        ("POST", "/metrics"),
        ("DELETE", "/health"),
        ("HEAD", "/metrics"),
    ] {
        let answer = request(server.addr, method, path).await;
        assert_eq!(
            status(&answer),
            "HTTP/1.1 405 Method Not Allowed",
            "{method} {path}: {answer}"
        );
        assert_eq!(header(&answer, "allow"), Some("GET"), "{answer}");
    }
}

#[tokio::test]
async fn garbage_gets_400_and_the_server_keeps_answering() {
    // Blank lines before a request are skipped (RFC 9112 §2.2): that case ends by the
    // header timeout, kept short here.
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let server = start(limits).await;
    server.health.send(Health::Serving).expect("listener alive");
    for raw in [
        &b"\x00\x01\xffgarbage\r\n\r\n"[..],
        b"GET /health HTTP/9.9\r\n\r\n",
        b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\r\n\r\n\r\n",
    ] {
        let answer = exchange(server.addr, raw).await;
        assert!(
            answer.is_empty() || status(&answer).starts_with("HTTP/1.1 4"),
            "{raw:?}: {answer}"
        );
    }
    let huge = format!(
        "GET /health HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let answer = exchange(server.addr, huge.as_bytes()).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = request(server.addr, "GET", "/health").await;
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(!server.task.is_finished());
}

#[tokio::test]
async fn a_client_that_sends_no_request_is_cut_off() {
    let limits = Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = start(limits).await;
    let started = Instant::now();
    let answer = exchange(server.addr, b"GET /health HTTP/1.1\r\n").await;
    assert!(started.elapsed() < WAIT, "closed by the header timeout");
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait() {
    let limits = Limits {
        max_connections: 1,
        header_read_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let server = start(limits).await;
    server.health.send(Health::Serving).expect("listener alive");
    let idle = TcpStream::connect(server.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let answer = request(server.addr, "GET", "/health").await;
    let waited = started.elapsed();
    assert_eq!(status(&answer), "HTTP/1.1 200 OK", "{answer}");
    assert!(
        waited >= Duration::from_millis(300),
        "served after {waited:?}, while the only permit was held"
    );
    drop(idle);
}

#[tokio::test]
async fn stop_ends_the_listener() {
    let server = start(Limits::default()).await;
    let _ = server.stop.send(());
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("stopped in time")
        .expect("no panic");
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "listener closed"
    );
}
