//! A fast local Web Push service for the benchmark, and a stand-in for Delta Chat's
//! notification proxy on the same port: a minimal HTTP/1.1 responder on tokio
//! (loopback, its own one-thread runtime) that reads each request's head and
//! `Content-Length` body, answers `201 Created` (a push to `/push/<name>`) or `200 OK`
//! (a notification to [`NOTIFY_PATH`], the token as its body) and keeps the connection
//! open. It records the arrival time (unix µs, the same clock as coid's log), the
//! endpoint name (`<name>` of `/push/<name>`, or the path), the body and the RFC
//! 8030/8291/8292 headers' presence; it does no crypto while requests arrive. [`Endpoint`] holds the "browser" side of one
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

/// The answer to a push, and to a Delta Chat notification.
const PUSHED: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
const NOTIFIED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
/// Where the notification proxy stand-in listens (`[deltachat] notify_url`).
pub const NOTIFY_PATH: &str = "/notify";
/// A request head larger than this is refused (closes the connection).
const MAX_HEAD: usize = 16 * 1024;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its body was complete, unix µs.
    pub at_us: i64,
    /// `<name>` of `/push/<name>`; any other path as it is ([`NOTIFY_PATH`]).
    pub endpoint: String,
    /// The encrypted body (a push), or the device token (a notification).
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
    /// Listens on an ephemeral loopback port and answers at once.
    pub fn start() -> Receiver {
        Receiver::answering_after(Duration::ZERO)
    }

    /// Listens on an ephemeral loopback port and answers each request `delay` after
    /// its body arrived: a push service that far away (its round trip and its own
    /// work), one request at a time per connection as HTTP/1.1 has it.
    pub fn answering_after(delay: Duration) -> Receiver {
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
            delay,
        ));
        Receiver {
            origin: format!("http://127.0.0.1:{port}"),
            seen,
            connections,
            _runtime: runtime,
        }
    }

    /// The notification proxy stand-in's URL, for `[deltachat] notify_url`.
    pub fn notify_url(&self) -> String {
        format!("{}{NOTIFY_PATH}", self.origin)
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

/// `count` distinct Delta Chat device tokens shaped like the ones core sends since
/// 1.151.4: `openpgp:` and the base64 of about what an OpenPGP message holding a
/// device token padded to 512 bytes takes (650 bytes), about 880 characters.
pub fn device_tokens(count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut ciphertext = [0u8; 650];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut ciphertext);
            format!("openpgp:{}", base64ct::Base64::encode_string(&ciphertext))
        })
        .collect()
}

/// Checks Delta Chat notifications: every one of `arrivals` is a request to
/// [`NOTIFY_PATH`] whose body is one of `tokens`, byte for byte, and each token
/// arrived exactly `each` times. Returns the arrival times (unix µs) of each token, in
/// the order of `tokens`, each sorted. `what` names the run in a failure.
pub fn notifications_per_token(
    arrivals: &[Arrival],
    tokens: &[String],
    each: usize,
    what: &str,
) -> Vec<Vec<i64>> {
    let mut times = vec![Vec::with_capacity(each); tokens.len()];
    for arrival in arrivals {
        assert_eq!(
            arrival.endpoint, NOTIFY_PATH,
            "{what}: a request that is no notification"
        );
        let token = tokens
            .iter()
            .position(|t| t.as_bytes() == arrival.body.as_slice())
            .unwrap_or_else(|| {
                panic!(
                    "{what}: a notification whose body is no token: {:?}",
                    String::from_utf8_lossy(&arrival.body)
                )
            });
        times[token].push(arrival.at_us);
    }
    let counts: Vec<usize> = times.iter().map(Vec::len).collect();
    assert!(
        counts.iter().all(|&n| n == each),
        "{what}: notifications per token {counts:?}, expected {each} each"
    );
    for t in &mut times {
        t.sort_unstable();
    }
    times
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
    delay: Duration,
) {
    while let Ok((stream, _)) = listener.accept().await {
        connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&seen), delay));
    }
}

/// Serves requests on one connection until the client closes it, each answered
/// `delay` after it arrived.
async fn connection(mut stream: TcpStream, seen: Arc<Mutex<Vec<Arrival>>>, delay: Duration) {
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
        let answer = if head.endpoint == NOTIFY_PATH {
            NOTIFIED
        } else {
            PUSHED
        };
        let arrival = Arrival {
            at_us: now_us(),
            endpoint: head.endpoint,
            body,
            validation: head.validation,
            headers_ok: head.headers_ok,
        };
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(arrival);
        buf.drain(..head_len + head.content_length);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if stream.write_all(answer).await.is_err() || head.close {
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
