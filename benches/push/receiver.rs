//! A fast local Web Push service for the benchmark: a minimal HTTP/1.1 responder on
//! tokio (loopback, its own one-thread runtime) that reads each request's head and
//! `Content-Length` body, answers `201 Created` and keeps the connection open. It
//! records the arrival time (unix µs, the same clock as coid's log), the endpoint name
//! (`/push/<name>`), the body and the RFC 8030/8291/8292 headers' presence; it does no
//! crypto while requests arrive. [`Endpoint`] holds the "browser" side of one
//! subscription (P-256 key, auth secret); [`Endpoint::decrypt`] opens a recorded body
//! with `web_push_native::decrypt`, after the measurement.
//!
//! Not a conforming HTTP server: no chunked bodies, no pipelining beyond what is read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64ct::{Base64UrlUnpadded, Encoding};
use coid::push::webpush::sender::Target;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::push_receiver::EndpointKeys;

const ANSWER: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
/// A request head larger than this is refused (closes the connection).
const MAX_HEAD: usize = 16 * 1024;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its body was complete, unix µs.
    pub at_us: i64,
    /// `<name>` of `/push/<name>`.
    pub endpoint: String,
    /// The encrypted body.
    pub body: Vec<u8>,
    /// It carried `WebPush-Validation`.
    pub validation: bool,
    /// `Authorization: vapid t=…, k=…`, `Content-Encoding: aes128gcm` and `TTL` were there.
    pub headers_ok: bool,
}

/// The receiving side of one subscription.
pub struct Endpoint {
    pub name: String,
    pub url: String,
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Endpoint {
    /// A fresh key pair and auth secret at `origin`/push/`name`.
    fn new(origin: &str, name: String) -> Endpoint {
        let mut auth = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut auth);
        Endpoint {
            url: format!("{origin}/push/{name}"),
            name,
            secret: p256::SecretKey::random(&mut rand_core::OsRng),
            auth,
        }
    }

    /// The keys as a COI client puts them in its subscription.
    pub fn keys(&self) -> EndpointKeys {
        let point = self.secret.public_key().to_encoded_point(false);
        EndpointKeys {
            url: self.url.clone(),
            p256dh: Base64UrlUnpadded::encode_string(point.as_bytes()),
            auth: Base64UrlUnpadded::encode_string(&self.auth),
        }
    }

    /// Where coid's [`coid::push::webpush::sender::Sender`] sends to.
    pub fn target(&self) -> Target {
        Target {
            endpoint: url::Url::parse(&self.url).expect("endpoint URL"),
            p256dh: self.secret.public_key(),
            auth: self.auth,
        }
    }

    /// The plaintext of a body sent to this endpoint.
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        let auth = web_push_native::Auth::clone_from_slice(&self.auth);
        web_push_native::decrypt(body.to_vec(), &self.secret, &auth).map_err(|e| format!("{e:?}"))
    }
}

/// The running service.
pub struct Receiver {
    origin: String,
    seen: Arc<Mutex<Vec<Arrival>>>,
    connections: Arc<AtomicUsize>,
    // Dropped last: stops the accept loop and every connection.
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    /// Listens on an ephemeral loopback port.
    pub fn start() -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("push-receiver")
            .enable_all()
            .build()
            .expect("receiver runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("receiver listens on loopback");
        let port = listener.local_addr().expect("receiver address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        runtime.spawn(accept(
            listener,
            Arc::clone(&seen),
            Arc::clone(&connections),
        ));
        Receiver {
            origin: format!("http://127.0.0.1:{port}"),
            seen,
            connections,
            _runtime: runtime,
        }
    }

    /// `count` endpoints named `<prefix><i>`.
    pub fn endpoints(&self, prefix: &str, count: usize) -> Vec<Endpoint> {
        (0..count)
            .map(|i| Endpoint::new(&self.origin, format!("{prefix}{i}")))
            .collect()
    }

    /// Requests recorded so far.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Takes every recorded request, leaving none.
    pub fn take(&self) -> Vec<Arrival> {
        std::mem::take(&mut *self.lock())
    }

    /// The latest request.
    pub fn last(&self) -> Option<Arrival> {
        self.lock().last().cloned()
    }

    /// Waits until `n` requests were recorded; false after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arrival>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Now, unix µs.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

async fn accept(
    listener: TcpListener,
    seen: Arc<Mutex<Vec<Arrival>>>,
    connections: Arc<AtomicUsize>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&seen)));
    }
}

/// Serves requests on one connection until the client closes it.
async fn connection(mut stream: TcpStream, seen: Arc<Mutex<Vec<Arrival>>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let head_len = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if buf.len() > MAX_HEAD || !read_more(&mut stream, &mut buf).await {
                return;
            }
        };
        let head = Head::parse(&buf[..head_len]);
        while buf.len() < head_len + head.content_length {
            if !read_more(&mut stream, &mut buf).await {
                return;
            }
        }
        let body = buf[head_len..head_len + head.content_length].to_vec();
        let arrival = Arrival {
            at_us: now_us(),
            endpoint: head.endpoint,
            body,
            validation: head.validation,
            headers_ok: head.headers_ok,
        };
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(arrival);
        buf.drain(..head_len + head.content_length);
        if stream.write_all(ANSWER).await.is_err() || head.close {
            return;
        }
    }
}

/// Reads what is there into `buf`; false when the peer closed or failed.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// What the benchmark needs from a request head.
struct Head {
    endpoint: String,
    content_length: usize,
    validation: bool,
    headers_ok: bool,
    close: bool,
}

impl Head {
    fn parse(head: &[u8]) -> Head {
        let text = String::from_utf8_lossy(head);
        let mut lines = text.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or_default();
        let mut head = Head {
            endpoint: path.strip_prefix("/push/").unwrap_or(path).to_owned(),
            content_length: 0,
            validation: false,
            headers_ok: false,
            close: false,
        };
        let (mut vapid, mut encoding, mut ttl) = (false, false, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => head.content_length = value.parse().unwrap_or(0),
                "webpush-validation" => head.validation = true,
                "authorization" => vapid = value.starts_with("vapid t=") && value.contains(", k="),
                "content-encoding" => encoding = value.eq_ignore_ascii_case("aes128gcm"),
                "ttl" => ttl = value.parse::<u64>().is_ok(),
                "connection" => head.close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        head.headers_ok = vapid && encoding && ttl;
        head
    }
}
