//! A push service far away: the real worker drains the durable queue (Web Push, then
//! Delta Chat, as [`crate::send::worker`] and [`crate::send::deltachat_worker`] do,
//! with the same checks: every push decrypted and matched, every token counted)
//! into a stand-in that answers each request [`ANSWER_AFTER`] after it arrived, at
//! several `[push] concurrency` values. On loopback a push is answered within a
//! millisecond and the worker is bound by its CPU; a real push service (FCM, Mozilla,
//! Apple, Delta Chat's notification proxy) answers tens of milliseconds away, and then
//! what bounds the rate is how many requests are in flight: at most `concurrency` /
//! the answer time. This part shows that bound and what raising `concurrency` buys.
//!
//! The stand-in speaks HTTP/1.1, one request at a time per connection, so the worker
//! opens `concurrency` connections; the real services speak HTTP/2 and share
//! connections among them.

use std::time::Duration;

use crate::receiver::{Receiver, device_tokens};
use crate::send::{self, Rate};

/// How long the stand-in takes to answer: a push service one continent away.
pub const ANSWER_AFTER: Duration = Duration::from_millis(50);
/// The `[push] concurrency` values measured.
pub const CONCURRENCY: [usize; 4] = [8, 32, 64, 256];
/// Subscriptions (and tokens) each message pushes to.
const TARGETS: usize = 8;
/// Answer times' worth of pushes per run at each concurrency: long enough that the
/// ramp (connections opened, the first claims) is a small part of it.
const ROUNDS_OF_ANSWERS: usize = 40;

/// One concurrency's runs: Web Push and Delta Chat.
pub struct Far {
    pub concurrency: usize,
    pub webpush: Rate,
    pub deltachat: Rate,
}

impl Far {
    /// The most a second that `concurrency` requests in flight allow.
    pub fn bound(&self) -> f64 {
        self.concurrency as f64 / ANSWER_AFTER.as_secs_f64()
    }
}

/// Runs the worker at each of [`CONCURRENCY`] against a stand-in [`ANSWER_AFTER`]
/// away; `chats(tag, n)` makes `n` distinct chats.
pub fn measure(chats: impl Fn(&str, usize) -> Vec<Vec<u8>>) -> Vec<Far> {
    let receiver = Receiver::answering_after(ANSWER_AFTER);
    let endpoints = receiver.endpoints("far", TARGETS);
    let tokens = device_tokens(TARGETS);
    CONCURRENCY
        .iter()
        .map(|&concurrency| {
            let messages = (ROUNDS_OF_ANSWERS * concurrency).div_ceil(TARGETS);
            let pushed = chats(&format!("far{concurrency}"), messages);
            let notified = chats(&format!("fardc{concurrency}"), messages);
            let (webpush, _) = send::worker(&receiver, &endpoints, &pushed, concurrency);
            let (deltachat, _) = send::deltachat_worker(&receiver, &tokens, &notified, concurrency);
            let far = Far {
                concurrency,
                webpush,
                deltachat,
            };
            eprintln!(
                "[bench] far ({} ms), concurrency {concurrency}: web push {:.0}/s, delta chat \
                 {:.0}/s (bound {:.0}/s), CPU {:?} / {:?}",
                ANSWER_AFTER.as_millis(),
                far.webpush.per_second(),
                far.deltachat.per_second(),
                far.bound(),
                far.webpush.cpu.rest,
                far.deltachat.cpu.rest,
            );
            far
        })
        .collect()
}
