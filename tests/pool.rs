//! Reused connections to the store (issue 10): coid keeps its LMTP connections to
//! Dovecot open between messages, and a pooled connection that died meanwhile (the
//! store restarted, or closed it as idle) costs nothing: coid notices before any byte
//! of the message went out and sends on a new connection, so Postfix gets its 250
//! without a deferral and the message is stored once. Real Postfix and Dovecot, with
//! the fault hop between coid and Dovecot.

mod common;

use std::time::Duration;

use common::fault::{Fault, FaultProxy};
use common::stack::{Stack, dovecot_opts};
use common::{Dovecot, MessageBuilder, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Dovecot behind the hop (`faults` for its first connections), coid keeping idle
/// connections (30 s by default, far longer than these tests wait), Postfix in front.
fn stack(faults: Vec<Fault>) -> (Stack, FaultProxy) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), faults);
    let stack = Stack::start_with(dovecot, |_, opts| {
        opts.dovecot_lmtp = proxy.addr();
    });
    (stack, proxy)
}

/// Sends one message through Postfix and waits until it is stored and Postfix has
/// its 250 (the store can hold the message a moment before its reply reached coid:
/// cutting the connection in that moment is LMTP's at-least-once, not the pool's
/// business); returns its id.
fn deliver(stack: &Stack, subject: &str) -> String {
    let msg = MessageBuilder::new().subject(subject);
    let id = stack.send("bob@example.net", &["alice@example.org"], &msg);
    stack.dovecot.wait_for_message("alice", &id, WAIT);
    stack
        .postfix
        .wait_for_empty_queue(WAIT)
        .expect("Postfix got its reply");
    id
}

/// Every message went through at the first try (no deferral) and is stored once.
fn delivered_once_without_deferral(stack: &Stack, ids: &[String]) {
    stack
        .postfix
        .wait_for_empty_queue(WAIT)
        .expect("queue drains");
    for id in ids {
        assert_eq!(stack.dovecot.count_message("alice", id), 1, "{id}");
    }
    let log = stack.postfix.log();
    assert!(!log.contains("status=deferred"), "a deferral:\n{log}");
}

#[test]
fn messages_share_one_connection() {
    let (stack, proxy) = stack(Vec::new());
    let ids: Vec<String> = (0..3).map(|n| deliver(&stack, &format!("m{n}"))).collect();
    delivered_once_without_deferral(&stack, &ids);
    assert_eq!(proxy.connections(), 1, "each message opened a connection");
}

#[test]
fn a_store_restart_between_messages_costs_no_deferral() {
    let (stack, proxy) = stack(Vec::new());
    let first = deliver(&stack, "before the restart");
    proxy.cut_all();
    let second = deliver(&stack, "after the restart");
    delivered_once_without_deferral(&stack, &[first, second]);
    assert_eq!(
        proxy.connections(),
        2,
        "one dead pooled connection, one new"
    );
    assert!(
        stack.coid.log().contains("pooled connection is gone"),
        "coid did not find the pooled connection dead"
    );
}

#[test]
fn a_connection_the_store_closed_as_idle_is_replaced() {
    let idle = Fault::CloseWhenIdle(Duration::from_millis(300));
    let (stack, proxy) = stack(vec![idle]);
    let first = deliver(&stack, "before the idle close");
    wait_until(WAIT, || (proxy.idle_closed() == 1).then_some(()))
        .expect("the hop closed the idle connection");
    let second = deliver(&stack, "after the idle close");
    delivered_once_without_deferral(&stack, &[first, second]);
    assert_eq!(proxy.connections(), 2);
}
