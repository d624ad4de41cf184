//! Nothing is lost: when the store refuses, stalls or dies in the middle of DATA, coid
//! answers 4xx, real Postfix keeps the message and retries, and it arrives exactly
//! once. When the store is down for good, every recipient gets a 4xx. A store that
//! answers each read just in time but never finishes meets the transaction deadline.

mod common;

use std::time::Duration;

use common::coid::{Coid, CoidOpts};
use common::fault::{Fault, FaultProxy};
use common::stack::{Stack, dovecot_opts};
use common::{Dovecot, DovecotOpts, LmtpTarget, MessageBuilder, send_lmtp};

const WAIT: Duration = Duration::from_secs(40);

/// Sends one message through Postfix with the store misbehaving per `faults`, and
/// checks it is deferred first and then stored exactly once.
fn survives(faults: Vec<Fault>) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), faults.clone());
    let stack = Stack::start_with(dovecot, |_, opts| {
        opts.dovecot_lmtp = proxy.addr();
        opts.reply_timeout_secs = 2;
    });
    let msg = MessageBuilder::new().subject("fault test");
    let id = stack.send("bob@example.net", &["alice@example.org"], &msg);
    let stored = stack.dovecot.wait_for_message("alice", &id, WAIT);
    assert_eq!(stored.mailbox, "INBOX");
    stack
        .postfix
        .wait_for_empty_queue(WAIT)
        .expect("queue drains");
    assert!(
        proxy.wait_store_answered(WAIT),
        "{faults:?}: Dovecot never answered a message the hop passed on"
    );
    assert_eq!(
        stack.dovecot.count_message("alice", &id),
        1,
        "{faults:?}: stored more than once"
    );
    assert!(
        proxy.connections() > faults.len(),
        "{faults:?}: Postfix did not retry"
    );
    let log = stack.postfix.log();
    assert!(
        log.contains("status=deferred"),
        "{faults:?}: no deferral in the Postfix log:\n{log}"
    );
    assert!(
        log.contains(" 451 4."),
        "{faults:?}: coid did not answer 4xx:\n{log}"
    );
}

/// Dovecot answered 250 for alice and the connection died before its answer for bob:
/// alice keeps her 250 (anything else makes Postfix deliver to her again), bob gets
/// 4xx and is retried. Dovecot had stored bob's copy before the cut, so he may get it
/// twice: a reply lost on the wire is LMTP's at-least-once, the same without coid.
#[test]
fn store_dies_between_recipient_replies() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), vec![Fault::CutAfterFirstReply]);
    let stack = Stack::start_with(dovecot, |_, opts| {
        opts.dovecot_lmtp = proxy.addr();
        opts.reply_timeout_secs = 2;
    });
    let msg = MessageBuilder::new().subject("two recipients, one answer");
    let id = stack.send(
        "x@example.net",
        &["alice@example.org", "bob@example.org"],
        &msg,
    );
    for user in ["alice", "bob"] {
        stack.dovecot.wait_for_message(user, &id, WAIT);
    }
    stack
        .postfix
        .wait_for_empty_queue(WAIT)
        .expect("queue drains");
    let log = stack.postfix.log();
    assert!(
        log.contains("to=<alice@example.org>") && log.contains("status=sent (250"),
        "{log}"
    );
    assert!(
        log.contains("to=<bob@example.org>") && log.contains("status=deferred"),
        "{log}"
    );
    assert!(
        proxy.wait_store_answered(WAIT),
        "Dovecot never answered a message the hop passed on"
    );
    assert_eq!(stack.dovecot.count_message("alice", &id), 1, "alice: {log}");
    assert!(stack.dovecot.count_message("bob", &id) >= 1, "bob: {log}");
}

#[test]
fn store_dies_mid_data() {
    survives(vec![Fault::DieMidData]);
}

#[test]
fn store_stalls() {
    survives(vec![Fault::Stall]);
}

#[test]
fn store_refuses() {
    survives(vec![Fault::Refuse, Fault::Refuse]);
}

#[test]
fn store_down_is_temporary_for_every_recipient() {
    let stack = Stack::start(DovecotOpts::default(), |d, opts| {
        opts.dovecot_lmtp = d.dir().join("no-such-socket").display().to_string();
    });
    let rcpts = ["alice@example.org", "bob@example.org"];
    let msg = MessageBuilder::chat().build();
    let outcome = send_lmtp(
        LmtpTarget::Tcp(stack.coid.lmtp_addr()),
        "x@example.net",
        &rcpts,
        &msg,
    );
    let codes: Vec<u16> = outcome.data.iter().map(|r| r.0).collect();
    assert_eq!(codes, [451, 451], "{outcome:?}");
}

/// Dovecot's answer after DATA reaches coid one byte every 300 ms: each read is well
/// within `reply_timeout_secs` (20 s), the whole answer would take about 20 s. The
/// transaction deadline (2 s) ends it: the recipient gets 451 (Dovecot had stored the
/// message, so Postfix's retry makes it at-least-once), and the connection is dropped,
/// not pooled: the next message goes on a new connection and gets its 250.
#[test]
fn store_dribbling_its_answer_meets_the_transaction_deadline() {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let dribble = Fault::DribbleAfterData(Duration::from_millis(300));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), vec![dribble]);
    let mut opts = CoidOpts::dovecot(&proxy.addr());
    opts.transaction_timeout_secs = Some(2);
    let coid = Coid::start(opts);
    let target = || LmtpTarget::Tcp(coid.lmtp_addr());
    let msg = MessageBuilder::new().subject("dribbled").build();
    let first = send_lmtp(target(), "x@example.net", &["alice@example.org"], &msg);
    let codes: Vec<u16> = first.data.iter().map(|r| r.0).collect();
    assert_eq!(codes, [451], "{first:?}");
    let msg = MessageBuilder::new().subject("after the deadline").build();
    let second = send_lmtp(target(), "x@example.net", &["alice@example.org"], &msg);
    let codes: Vec<u16> = second.data.iter().map(|r| r.0).collect();
    assert_eq!(codes, [250], "{second:?}");
    assert_eq!(
        proxy.connections(),
        2,
        "the connection past its deadline was pooled and used again"
    );
}
