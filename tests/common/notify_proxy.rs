//! A stand-in for Delta Chat's notification proxy (`notifications.delta.chat`), for
//! fault injection only.
//!
//! coid sends one `POST <notify_url>` per device token, the token as the whole body.
//! The real proxy is on the Internet, and its answers cannot be chosen; this one is a
//! loopback HTTP/1.1 server on a leased port ([`super::ports`]) that records every
//! request (method, path, raw body bytes, arrival time, the answer it got) and answers
//! from a script the test may change at any time: a status (200, 404, 410, 500 ...),
//! 429 with or without `Retry-After`, a 302 redirect to [`REDIRECT_PATH`] on itself (so
//! a test can assert that the target was never requested), or a stall (the request is
//! read and recorded, then never answered until [`NotifyProxy::release_stalled`] or the
//! end of the test).
//!
//! It does not check anything itself (no JSON, no headers): the tests assert on what
//! it recorded. Std threads only, one per connection, at most [`MAX_CONNECTIONS`] at
//! once (more are closed unanswered and counted), heads up to [`MAX_HEAD`] and bodies up
//! to [`MAX_BODY`] bytes (a larger body gets 413 and the connection is closed).
//! Dropping it stops it: the listener and every open connection are shut down and all
//! its threads joined.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod wire;

use super::ports::{PortLease, lease_port};
use super::wait_until;
use wire::{TooLarge, answer_bytes, read_request};

/// Where coid is told to POST (`[deltachat] notify_url`).
pub const NOTIFY_PATH: &str = "/notify";
/// Where [`Answer::Redirect`] points; coid must never request it.
pub const REDIRECT_PATH: &str = "/redirected";
/// Connections open at once; more are closed unanswered.
pub const MAX_CONNECTIONS: usize = 32;
/// Request line plus header fields.
pub const MAX_HEAD: usize = 16 * 1024;
/// One request body (a Delta Chat token is at most 4096 bytes).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a connection may take to send the rest of a request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How the stand-in answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// 429, with `Retry-After: <seconds>` if given.
    TooMany(Option<u64>),
    /// 302 with `Location:` [`REDIRECT_PATH`] on this server.
    Redirect,
    /// Read the request, never answer (until released or dropped; then the
    /// connection is closed without an answer).
    Stall,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// `POST`, `GET` ...
    pub method: String,
    /// The request target, e.g. `/notify`.
    pub path: String,
    /// The body, byte for byte (chunked bodies are de-chunked).
    pub body: Vec<u8>,
    /// When the whole request had arrived.
    pub at: Instant,
    /// What it was answered.
    pub answer: Answer,
}

impl Request {
    /// Seconds since `earlier` arrived.
    pub fn since(&self, earlier: &Request) -> f64 {
        self.at.duration_since(earlier.at).as_secs_f64()
    }

    /// Whether this is a POST to [`NOTIFY_PATH`] with exactly `body`.
    pub fn is_post_of(&self, body: &str) -> bool {
        self.method == "POST" && self.path == NOTIFY_PATH && self.body == body.as_bytes()
    }
}

/// The script and the record, shared by all threads.
#[derive(Default)]
struct State {
    requests: Vec<Request>,
    /// One-shot answers, used first, in order.
    once: VecDeque<Answer>,
    /// Standing answers for requests with exactly this body.
    by_body: Vec<(Vec<u8>, Answer)>,
    /// For everything else; `None` means 200.
    default: Option<Answer>,
    /// Bumped by `release_stalled`; a stall ends when it changes.
    release: u64,
    closing: bool,
    /// Clones of the open connections, to shut them down on drop.
    open: Vec<(u64, TcpStream)>,
    next_id: u64,
    workers: Vec<JoinHandle<()>>,
    /// Connections closed unanswered because [`MAX_CONNECTIONS`] were open.
    refused: usize,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    port: u16,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread leaves the record consistent; keep using it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Picks the answer for `request`, records both, returns the answer.
    fn answer(&self, method: String, path: String, body: Vec<u8>) -> Answer {
        let mut state = self.lock();
        let standing = state.by_body.iter().find(|(b, _)| *b == body);
        let standing = standing.map(|(_, answer)| answer.clone());
        let once = state.once.pop_front();
        let fallback = state.default.clone().unwrap_or(Answer::Status(200));
        let answer = once.or(standing).unwrap_or(fallback);
        state.requests.push(Request {
            method,
            path,
            body,
            at: Instant::now(),
            answer: answer.clone(),
        });
        answer
    }

    /// Blocks until the next `release_stalled` or the end.
    fn stall(&self) {
        let state = self.lock();
        let generation = state.release;
        let _released = self
            .changed
            .wait_while(state, |s| s.release == generation && !s.closing)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// A running stand-in; stops when dropped.
pub struct NotifyProxy {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    _port: PortLease,
}

impl NotifyProxy {
    /// Listens on a leased loopback port; answers 200 until told otherwise.
    pub fn start() -> NotifyProxy {
        let lease = lease_port();
        let listener = TcpListener::bind(("127.0.0.1", lease.port()))
            .expect("binding the notification stand-in's leased port");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            port: lease.port(),
        });
        let for_thread = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("notify-proxy-accept".into())
            .spawn(move || accept_loop(&listener, &for_thread))
            .expect("starting the notification stand-in");
        NotifyProxy {
            shared,
            accept: Some(accept),
            _port: lease,
        }
    }

    /// `http://127.0.0.1:<port>/notify`, for `[deltachat] notify_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{NOTIFY_PATH}", self.shared.port)
    }

    /// The answer for every request no other rule covers (initially 200).
    pub fn set_default(&self, answer: Answer) {
        self.shared.lock().default = Some(answer);
    }

    /// The standing answer for requests whose body is exactly `body` (replaces an
    /// earlier one for the same body).
    pub fn answer_body(&self, body: &str, answer: Answer) {
        let mut state = self.shared.lock();
        state.by_body.retain(|(b, _)| b != body.as_bytes());
        state.by_body.push((body.as_bytes().to_vec(), answer));
    }

    /// One-shot answers for the next requests, whatever their body, before any rule.
    pub fn queue(&self, answers: &[Answer]) {
        self.shared.lock().once.extend(answers.iter().cloned());
    }

    /// Ends every stall in progress (those connections close unanswered).
    pub fn release_stalled(&self) {
        self.shared.lock().release += 1;
        self.shared.changed.notify_all();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// The POSTs to [`NOTIFY_PATH`] so far.
    pub fn posts(&self) -> Vec<Request> {
        let all = self.requests().into_iter();
        all.filter(|r| r.method == "POST" && r.path == NOTIFY_PATH)
            .collect()
    }

    /// Connections closed unanswered because too many were open.
    pub fn refused(&self) -> usize {
        self.shared.lock().refused
    }

    /// Waits until `done(requests)` holds; panics with `what` and the record after
    /// `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Request]) -> bool,
    ) -> Vec<Request> {
        wait_until(timeout, || {
            let requests = self.requests();
            done(&requests).then_some(requests)
        })
        .unwrap_or_else(|| {
            panic!(
                "{what}: not within {timeout:?}; seen: {:#?}",
                self.requests()
            )
        })
    }
}

impl Drop for NotifyProxy {
    fn drop(&mut self) {
        let workers = {
            let mut state = self.shared.lock();
            state.closing = true;
            for (_, stream) in &state.open {
                let _ = stream.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut state.workers)
        };
        self.shared.changed.notify_all();
        // Wakes the blocking accept, which then sees `closing`.
        let _ = TcpStream::connect(("127.0.0.1", self.shared.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let mut state = shared.lock();
        if state.closing {
            return;
        }
        let Ok(stream) = stream else { continue };
        if state.open.len() >= MAX_CONNECTIONS {
            state.refused += 1;
            continue; // dropping `stream` closes it
        }
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = state.next_id;
        state.next_id += 1;
        state.open.push((id, clone));
        let for_thread = Arc::clone(shared);
        let worker = std::thread::Builder::new()
            .name("notify-proxy-conn".into())
            .spawn(move || {
                serve(stream, &for_thread);
                for_thread.lock().open.retain(|(open, _)| *open != id);
            });
        match worker {
            Ok(worker) => state.workers.push(worker),
            Err(_) => state.open.retain(|(open, _)| *open != id),
        }
    }
}

/// Answers requests on one connection (HTTP/1.1 keep-alive) until it ends.
fn serve(stream: TcpStream, shared: &Shared) {
    if stream.set_read_timeout(Some(READ_TIMEOUT)).is_err() {
        return;
    }
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut writer = stream;
    loop {
        let (method, path, body) = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(TooLarge) => {
                let _ = writer.write_all(&answer_bytes(413, &[], true));
                return;
            }
        };
        let answer = shared.answer(method, path, body);
        let bytes = match answer {
            Answer::Stall => return shared.stall(),
            Answer::Status(code) => answer_bytes(code, &[], false),
            Answer::TooMany(after) => {
                let after = after.map(|s| format!("Retry-After: {s}"));
                answer_bytes(429, after.as_slice(), false)
            }
            Answer::Redirect => {
                let location = format!("Location: http://127.0.0.1:{}{REDIRECT_PATH}", shared.port);
                answer_bytes(302, &[location], false)
            }
        };
        if writer
            .write_all(&bytes)
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}
