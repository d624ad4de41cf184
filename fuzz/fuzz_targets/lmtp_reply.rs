//! What Dovecot sends back: coid's LMTP client (`delivery::lmtp_client`) and the
//! Dovecot backend that acts on its replies (`delivery::dovecot::DovecotLmtp`), against
//! a fake Dovecot on loopback TCP that answers every connection with the fuzz input
//! (greeting, LHLO, MAIL, RCPT, DATA and per-recipient replies, or anything else), then
//! closes its side. Each reply line is also given to `parse_reply_line` directly.
//!
//! Properties, beyond "no panic" and "no hang" (every read has a timeout; the fake
//! closes, so none is ever waited out):
//! - every copy is answered (none is left "not answered");
//! - each copy's reply (`answer::reply` of its outcome) is coid's own 4xx (store
//!   unavailable) or 553 (UTF-8 address unsupported), or a reply Dovecot sent, as
//!   `parse_reply_line` reads that line;
//! - delivered only after the whole message went out: Dovecot answered DATA with 354,
//!   received the `CRLF.CRLF` terminator and answered 2xx;
//! - a reply line that parses comes back out, as coid relays it to Postfix, as one line
//!   without CR or LF that parses back to the same code, and relayed again unchanged.
//!
//! Input: the first byte picks the jobs (bits 0-1: 1 to 3 recipients; bit 2: the
//! second recipient has another target, so a second transaction; bit 3: a UTF-8
//! sender; bit 4: BODY=8BITMIME); the rest is Dovecot's side of the conversation.

#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use coid::answer::{self, Answer};
use coid::config::DovecotConfig;
use coid::delivery::dovecot::DovecotLmtp;
use coid::delivery::lmtp_client::parse_reply_line;
use coid::delivery::{Backend, Delivery, Job, Message, Outcome, Temporary};
use coid::lmtp::{Envelope, Recipient, Reply};
use coid::policy::Target;
use coid::spool::Spooled;
use coid::users::UserAddress;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The fake Dovecot: what it says, what it heard, how many connections are open.
#[derive(Default)]
struct Script {
    says: Mutex<Vec<u8>>,
    heard: Mutex<Vec<u8>>,
    open: AtomicUsize,
    closed: Notify,
}

struct Fake {
    runtime: tokio::runtime::Runtime,
    script: Arc<Script>,
    backend: DovecotLmtp,
}

fn fake() -> &'static Fake {
    static FAKE: OnceLock<Fake> = OnceLock::new();
    FAKE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let script = Arc::new(Script::default());
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address").to_string();
        runtime.spawn(serve(listener, script.clone()));
        let config = DovecotConfig {
            lmtp: addr,
            connect_timeout_secs: 5,
            reply_timeout_secs: 5,
            // A connection per message: every run starts from the input, and each
            // connection ends (none waits in the pool for the next run).
            max_idle_connections: 0,
            ..DovecotConfig::default()
        };
        Fake {
            runtime,
            script,
            backend: DovecotLmtp::new(&config),
        }
    })
}

/// Every connection: write the script and close the sending side; record what coid
/// sends until it closes.
async fn serve(listener: TcpListener, script: Arc<Script>) {
    while let Ok((socket, _)) = listener.accept().await {
        let (mut rd, mut wr) = socket.into_split();
        let says = script.says.lock().expect("lock").clone();
        script.open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _ = wr.write_all(&says).await;
            let _ = wr.shutdown().await;
        });
        let script = script.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let got = buf.get(..n).unwrap_or_default();
                script.heard.lock().expect("lock").extend_from_slice(got);
            }
            script.open.fetch_sub(1, Ordering::SeqCst);
            script.closed.notify_waiters();
        });
    }
}

fn jobs(selector: u8) -> (Envelope, Vec<Job>) {
    let routed = Target {
        folder: Some("COI/Chats".into()),
        flags: vec!["$Chat".into()],
        create: true,
    };
    let count = usize::from(selector % 4).clamp(1, 3);
    let jobs: Vec<Job> = (0..count)
        .map(|i| {
            let rcpt = format!("user{i}@example.org");
            Job {
                user: UserAddress {
                    local: format!("user{i}"),
                    domain: "example.org".into(),
                    username: rcpt.clone(),
                },
                rcpt,
                target: if i == 1 && selector & 4 != 0 {
                    routed.clone()
                } else {
                    Target::inbox()
                },
            }
        })
        .collect();
    let envelope = Envelope {
        mail_from: if selector & 8 != 0 {
            "jörg@example.org".into()
        } else {
            "sender@example.org".into()
        },
        body_8bit: selector & 16 != 0,
        smtputf8: selector & 8 != 0,
        declared_size: None,
        recipients: jobs
            .iter()
            .map(|j| Recipient::new(j.rcpt.clone()))
            .collect(),
    };
    (envelope, jobs)
}

/// The replies in `says`, as the client's line reader cuts and decodes its lines.
fn lines_said(says: &[u8]) -> Vec<Reply> {
    says.split_inclusive(|&b| b == b'\n')
        .filter(|line| line.len() <= 4096 && line.ends_with(b"\n"))
        .filter_map(|line| {
            let text = String::from_utf8_lossy(line);
            parse_reply_line(text.trim_end()).ok().map(|(r, _)| r)
        })
        .collect()
}

/// A parsed line relayed to Postfix stays one line and reads back with the same code.
fn check_line(line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let Ok((reply, _)) = parse_reply_line(text.trim_end()) else {
        return;
    };
    assert!((200..600).contains(&reply.code), "{reply:?}");
    let mut relayed = Vec::new();
    reply.write_to(&mut relayed);
    let relayed = String::from_utf8(relayed).expect("UTF-8");
    let body = relayed.strip_suffix("\r\n").expect("CRLF");
    assert!(!body.contains(['\r', '\n']), "relayed {body:?}");
    let (again, more) = parse_reply_line(body.trim_end()).expect("relayed reply parses");
    assert!(!more);
    // The same reply, up to the spelling of an enhanced code: a CR in `250 2.1.05\rx`
    // became a space, so `2.1.05` now reads as the code 2.1.5. Relayed again, it stays.
    assert_eq!(again.code, reply.code, "relayed {body:?}");
    let mut twice = Vec::new();
    again.write_to(&mut twice);
    let twice = String::from_utf8(twice).expect("UTF-8");
    let (third, _) = parse_reply_line(twice.trim_end()).expect("parses");
    assert_eq!(third, again, "relaying {body:?} again changes it");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, says)) = data.split_first() else {
        return;
    };
    for line in says.split(|&b| b == b'\n') {
        check_line(line);
    }
    let fake = fake();
    *fake.script.says.lock().expect("lock") = says.to_vec();
    fake.script.heard.lock().expect("lock").clear();
    let (envelope, jobs) = jobs(selector);
    let body = Spooled::Memory(b"Subject: s\r\n\r\n.body\r\n".to_vec());
    let message = Message {
        envelope: &envelope,
        body: &body,
    };
    let mut copies: Vec<Delivery> = jobs.into_iter().map(Delivery::new).collect();
    fake.runtime.block_on(async {
        fake.backend.deliver(&message, &mut copies).await;
        while fake.script.open.load(Ordering::SeqCst) > 0 {
            let closed = fake.script.closed.notified();
            if fake.script.open.load(Ordering::SeqCst) == 0 {
                break;
            }
            closed.await;
        }
    });
    let said = lines_said(says);
    let heard = fake.script.heard.lock().expect("lock").clone();
    let data_sent = memchr_find(&heard, b"\r\nDATA\r\n")
        .is_some_and(|at| memchr_find(&heard[at..], b"\r\n.\r\n").is_some());
    for copy in &copies {
        let outcome = &copy.outcome;
        assert_ne!(
            *outcome,
            Outcome::Temporary(Temporary::NotAnswered),
            "unanswered"
        );
        if outcome.is_delivered() {
            assert!(said.iter().any(|r| r.code == 354), "2xx without DATA");
            assert!(
                said.iter().any(Reply::is_success),
                "delivered without a 2xx"
            );
            assert!(data_sent, "2xx before the message went out: {heard:?}");
            continue;
        }
        let reply = answer::reply(&Answer::Delivery(outcome.clone()));
        let own = reply == Reply::STORE_UNAVAILABLE || reply == Reply::UTF8_ADDRESS_UNSUPPORTED;
        assert!(
            own || said.contains(&reply),
            "reply {reply:?} was never sent"
        );
    }
});

fn memchr_find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
