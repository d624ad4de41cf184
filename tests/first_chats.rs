//! A user's first chats arriving at once: COI/Chats does not exist yet, and several
//! deliveries would create it at the same moment (Pigeonhole's `fileinto :create`,
//! one Dovecot LMTP process each). Every one of them must land in COI/Chats with
//! `$Chat`; none may fall back to INBOX because another delivery was creating the
//! folder (Dovecot 2.3: "Mailbox doesn't exist: COI"). coid lets one first delivery
//! per user and folder through at a time (`src/delivery/create_gate.rs`); without
//! that, this test failed in 5 runs of 6. Eight LMTP sessions per user hand coid a
//! chat each at once, for 12 fresh users. Every other chat goes to alice too, whose
//! copy stays in INBOX: two targets, so coid takes the store-and-forward path (one
//! transaction per target) for it instead of cut-through (one target).

mod common;

use std::time::Duration;

use common::raw_lmtp::Client;
use common::smtp::data_payload;
use common::stack::{Stack, dovecot_opts};
use common::{DovecotUser, MessageBuilder};

const WAIT: Duration = Duration::from_secs(30);
const USERS: usize = 12;
const AT_ONCE: usize = 8;

fn user(n: usize) -> String {
    format!("first{n}@example.org")
}

#[test]
fn first_chats_at_once_all_land_in_coi_chats() {
    first_chats_at_once("");
}

/// With one connection to the store, deliveries that wait at the gate and deliveries
/// that wait for the connection must not wait for each other: a transaction enters
/// the gate only with its connection in hand. (Entering it before taking a connection
/// stalled here: a 451 after the connect timeout.)
#[test]
fn first_chats_at_once_over_one_connection() {
    first_chats_at_once(
        "max_connections = 1\nmax_idle_connections = 1\nconnect_timeout_secs = 5\n",
    );
}

/// Eight chats at once for each fresh user, every other one shared with alice; coid gets
/// `dovecot_extra` in `[delivery.dovecot]`.
fn first_chats_at_once(dovecot_extra: &str) {
    let mut opts = dovecot_opts("/");
    for n in 0..USERS {
        opts = opts.with_user(DovecotUser::new(&user(n)));
    }
    let stack = Stack::start(opts, |_, coid| {
        coid.dovecot_extra = dovecot_extra.to_owned()
    });
    for n in 0..USERS {
        stack
            .coid
            .user_set(&user(n), &["enabled=yes", "message-filter=active"]);
    }
    // alice keeps chats in INBOX: a second target next to a fresh user's COI/Chats.
    stack
        .coid
        .user_set("alice@example.org", &["enabled=yes", "message-filter=none"]);
    for n in 0..USERS {
        let to = user(n);
        // Every other chat is shared with alice: both paths, for every user at once.
        let with_alice = |i: usize| (n + i) % 2 == 1;
        let messages: Vec<MessageBuilder> = (0..AT_ONCE)
            .map(|i| {
                MessageBuilder::chat()
                    .to(&to)
                    .subject(&format!("first {i}"))
            })
            .collect();
        let mut clients: Vec<Client> = (0..AT_ONCE)
            .map(|i| {
                let mut client = Client::connect(stack.coid.lmtp_addr());
                assert_eq!(client.command("LHLO client.example.net"), 250);
                assert_eq!(client.command("MAIL FROM:<bob@example.net>"), 250);
                assert_eq!(client.command(&format!("RCPT TO:<{to}>")), 250);
                if with_alice(i) {
                    assert_eq!(client.command("RCPT TO:<alice@example.org>"), 250);
                }
                assert_eq!(client.command("DATA"), 354);
                client
            })
            .collect();
        for (client, msg) in clients.iter_mut().zip(&messages) {
            client.send(&data_payload(&msg.build()));
        }
        for (i, client) in clients.iter_mut().enumerate() {
            for _ in 0..if with_alice(i) { 2 } else { 1 } {
                let reply = client.line();
                assert!(reply.starts_with("250"), "{to} message {i}: {reply}");
            }
        }
        let local = to.split('@').next().expect("local part").to_owned();
        for (i, msg) in messages.iter().enumerate() {
            stack.dovecot.wait_for_message(&to, &msg.id(), WAIT);
            let copies = stack.dovecot.imap(&to).find_all(&msg.id());
            let placed: Vec<(String, bool)> = copies
                .iter()
                .map(|m| (m.mailbox.clone(), m.has_flag("$Chat")))
                .collect();
            assert_eq!(
                placed,
                vec![("COI/Chats".to_owned(), true)],
                "{local} (with alice: {}): {}\nDovecot errors: {:?}",
                with_alice(i),
                msg.id(),
                stack.dovecot.log_errors()
            );
        }
    }
}
