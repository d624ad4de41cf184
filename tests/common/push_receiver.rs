//! A local Web Push service for the tests: `tests/push/receiver.py`, which decrypts
//! with Python's `http_ece` and verifies VAPID with `cryptography` (implementations
//! that are not coid's), on a leased loopback port. Each endpoint gets a fresh P-256
//! key and auth secret here (the "browser" side), a scripted list of answers, and
//! every request it saw is read back from the receiver's JSON-lines log.
//!
//! The Python interpreter comes from `COID_TEST_PYTHON` (tests/run.sh installs a venv
//! with http_ece); without it the test panics, it is never skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::ports::{PortLease, lease_port};
use super::{make_run_dir, process, wait_until};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/push/receiver.py");

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status.
    Status(u16),
    /// 429 with this `Retry-After`.
    RetryAfter(&'static str),
    /// Wait this long, then 201.
    Stall(u64),
    /// This 3xx status with `Location:` this URL.
    Redirect(u16, String),
}

/// The subscription keys of one endpoint, as a browser would hand them out.
#[derive(Debug, Clone)]
pub struct EndpointKeys {
    /// The push URL.
    pub url: String,
    /// base64url uncompressed P-256 point.
    pub p256dh: String,
    /// base64url 16 bytes.
    pub auth: String,
}

/// A running receiver.
pub struct PushReceiver {
    child: Child,
    port: PortLease,
    dir: TempDir,
    keys: Vec<(String, EndpointKeys)>,
}

impl PushReceiver {
    /// Starts the receiver with these endpoints and their scripted answers.
    pub fn start(endpoints: &[(&str, Vec<Answer>)]) -> PushReceiver {
        let python = std::env::var("COID_TEST_PYTHON").unwrap_or_else(|_| {
            panic!("COID_TEST_PYTHON is not set: run the tests with tests/run.sh (it installs http_ece)")
        });
        let dir = make_run_dir("coid-push-");
        let port = lease_port();
        let mut config = serde_json::Map::new();
        let mut keys = Vec::new();
        for (name, answers) in endpoints {
            let secret = p256::SecretKey::random(&mut rand_core::OsRng);
            let mut auth = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut auth);
            let public = secret.public_key().to_encoded_point(false);
            config.insert(
                (*name).to_owned(),
                json!({
                    "private_key": Base64UrlUnpadded::encode_string(&secret.to_bytes()),
                    "auth": Base64UrlUnpadded::encode_string(&auth),
                    "responses": answers.iter().map(answer_json).collect::<Vec<_>>(),
                }),
            );
            keys.push((
                (*name).to_owned(),
                EndpointKeys {
                    url: format!("http://127.0.0.1:{}/push/{name}", port.port()),
                    p256dh: Base64UrlUnpadded::encode_string(public.as_bytes()),
                    auth: Base64UrlUnpadded::encode_string(&auth),
                },
            ));
        }
        let config_path = dir.path().join("config.json");
        process::write_file(&config_path, json!({ "endpoints": config }).to_string());
        let child = Command::new(&python)
            .arg(SCRIPT)
            .args(["--port", &port.port().to_string(), "--config"])
            .arg(&config_path)
            .arg("--log")
            .arg(dir.path().join("log.jsonl"))
            .stdin(Stdio::null())
            .stdout(process::output_file(&dir.path().join("stdout")))
            .stderr(process::output_file(&dir.path().join("stderr")))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {python} {SCRIPT}: {e}"));
        let receiver = PushReceiver {
            child,
            port,
            dir,
            keys,
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], receiver.port.port()));
        wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).ok().map(|_| ())
        })
        .unwrap_or_else(|| panic!("push receiver did not listen:\n{}", receiver.stderr()));
        receiver
    }

    /// The keys of endpoint `name`.
    pub fn keys(&self, name: &str) -> EndpointKeys {
        self.keys
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k.clone())
            .unwrap_or_else(|| panic!("no endpoint {name}"))
    }

    /// `http://127.0.0.1:<port>`: what VAPID `aud` must be.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port.port())
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("log line {l}: {e}")))
            .collect()
    }

    /// Waits until at least `n` requests were seen; panics with the log otherwise.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Value> {
        wait_until(timeout, || {
            let seen = self.requests();
            (seen.len() >= n).then_some(seen)
        })
        .unwrap_or_else(|| {
            panic!(
                "push receiver saw {} of {n} requests:\n{:#?}\n{}",
                self.requests().len(),
                self.requests(),
                self.stderr()
            )
        })
    }

    /// The requests that began to stall (a scripted [`Answer::Stall`]) so far, noted
    /// when they arrived: they are in [`PushReceiver::requests`] only once answered.
    pub fn stalls(&self) -> Vec<Value> {
        let path = self.dir.path().join("log.jsonl.stalls");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stall line {l}: {e}")))
            .collect()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log.jsonl")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

fn answer_json(answer: &Answer) -> Value {
    match answer {
        Answer::Status(s) => json!({ "status": s }),
        Answer::RetryAfter(v) => json!({ "status": 429, "retry_after": v }),
        Answer::Stall(secs) => json!({ "stall": secs }),
        Answer::Redirect(status, url) => json!({ "status": status, "location": url }),
    }
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
