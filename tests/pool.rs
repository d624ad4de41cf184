//! Reused connections to the store (issue 10): coid keeps its LMTP connections to
//! Dovecot open between messages, and a pooled connection that died meanwhile (the
//! store restarted, or closed it as idle) costs nothing: coid notices before any byte
//! of the message went out and sends on a new connection, so Postfix gets its 250
//! without a deferral and the message is stored once. Real Postfix and Dovecot, with
//! the fault hop between coid and Dovecot. With every connection coid may open in
//! use, a delivery waits for one to come back instead of failing.

mod common;

use std::time::Duration;

use common::fault::{Fault, FaultProxy};
use common::raw_lmtp::Client;
use common::smtp::data_payload;
use common::stack::{Stack, dovecot_opts};
use common::{Dovecot, MessageBuilder, wait_until};

const WAIT: Duration = Duration::from_secs(30);

/// Dovecot behind the hop (`faults` for its first connections), coid keeping idle
/// connections (30 s by default, far longer than these tests wait), Postfix in front.
fn stack(faults: Vec<Fault>) -> (Stack, FaultProxy) {
    stack_with(faults, "")
}

/// [`stack`] with more `[delivery.dovecot]` keys for coid.
fn stack_with(faults: Vec<Fault>, dovecot_extra: &str) -> (Stack, FaultProxy) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), faults);
    let stack = Stack::start_with(dovecot, |_, opts| {
        opts.dovecot_lmtp = proxy.addr();
        opts.dovecot_extra = dovecot_extra.to_owned();
    });
    (stack, proxy)
}

/// One connection at most, and a wait for it far shorter than the tests' (a
/// delivery that waited in vain would get its 451 within it).
const ONE_CONNECTION: &str =
    "max_connections = 1\nmax_idle_connections = 1\nconnect_timeout_secs = 3\n";

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

/// A message, a restart of the store (every connection through the hop cut), a
/// message: both delivered once without a deferral, over two connections. Returns
/// the stack, for more checks.
fn restart_between_messages(dovecot_extra: &str) -> Stack {
    let (stack, proxy) = stack_with(Vec::new(), dovecot_extra);
    let first = deliver(&stack, "before the restart");
    proxy.cut_all();
    let second = deliver(&stack, "after the restart");
    delivered_once_without_deferral(&stack, &[first, second]);
    assert_eq!(
        proxy.connections(),
        2,
        "one dead pooled connection, one new"
    );
    stack
}

#[test]
fn a_store_restart_between_messages_costs_no_deferral() {
    let stack = restart_between_messages("");
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

/// The only connection coid may open dies while idle: its replacement takes its
/// place, rather than waiting for a place the dead one still holds.
#[test]
fn a_dead_connection_is_replaced_in_its_place() {
    restart_between_messages(ONE_CONNECTION);
}

/// Four LMTP sessions hand coid their messages at once, and coid may open one
/// connection to the store: each delivery waits for the connection the one before
/// put back, and every session gets its 250 over that one connection.
#[test]
fn sessions_beyond_max_connections_take_turns_on_one() {
    let (stack, proxy) = stack_with(Vec::new(), ONE_CONNECTION);
    let messages: Vec<MessageBuilder> = (0..4)
        .map(|n| MessageBuilder::new().subject(&format!("session {n}")))
        .collect();
    let mut clients: Vec<Client> = messages
        .iter()
        .map(|_| {
            let mut client = Client::connect(stack.coid.lmtp_addr());
            client.start_data();
            client
        })
        .collect();
    for (client, msg) in clients.iter_mut().zip(&messages) {
        client.send(&data_payload(&msg.build()));
    }
    let replies: Vec<String> = clients.iter_mut().map(Client::line).collect();
    for (n, reply) in replies.iter().enumerate() {
        assert!(reply.starts_with("250"), "session {n}: {reply}");
    }
    for msg in &messages {
        stack.dovecot.wait_for_message("alice", &msg.id(), WAIT);
        assert_eq!(stack.dovecot.count_message("alice", &msg.id()), 1);
    }
    assert_eq!(
        proxy.connections(),
        1,
        "more than one connection to the store"
    );
}
