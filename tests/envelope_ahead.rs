//! The envelope sent ahead (issue 10, latency): at DATA, coid writes the envelope on an
//! idle pooled store connection before the client has sent a byte of the message, and
//! reads the store's replies once the header section decided the message. These tests
//! hold what that may and may not change, on the real path (coid, the fault hop, real
//! Dovecot):
//! * the store has the envelope before the client sent any of the message, and the
//!   message is then stored once, on the same connection;
//! * a client that goes away before its header section leaves nothing in the store:
//!   the announced connection is dropped with DATA open and no end mark;
//! * only a transaction with one recipient is announced, and its transaction is
//!   used only when that recipient gets one copy: a recipient the policy discards
//!   gets nothing, one the policy files into two folders gets one copy in each;
//! * a message for several recipients, here decided into different folders, sends
//!   no envelope ahead, and each recipient gets one copy in its own folder.

mod common;

use std::time::Duration;

use common::coid::{Coid, CoidOpts};
use common::fault::FaultProxy;
use common::raw_lmtp::Client;
use common::smtp::data_payload;
use common::stack::dovecot_opts;
use common::{Dovecot, LmtpTarget, MessageBuilder, send_lmtp};

const WAIT: Duration = Duration::from_secs(30);

/// Dovecot, the hop in front of it, coid delivering through the hop with the COI
/// defaults on (chats to `COI/Chats`) and `policy` (Sieve; empty: the built-in one),
/// and one message delivered so that a store connection waits idle in coid's pool.
fn warm_stack(policy: &str) -> (Dovecot, FaultProxy, Coid, tempfile::TempDir) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), Vec::new());
    let mut opts = CoidOpts::dovecot(&proxy.addr());
    opts.coi_enabled = true;
    opts.message_filter = "active".into();
    let dir = tempfile::tempdir().expect("a directory for the policy");
    if !policy.is_empty() {
        let script = dir.path().join("policy.sieve");
        std::fs::write(&script, policy).expect("writing the policy");
        opts.policy_script = script.display().to_string();
    }
    let coid = Coid::start(opts);
    let warm = MessageBuilder::new().subject("fills the pool");
    deliver(&coid, &["alice@example.org"], &warm);
    dovecot.wait_for_message("alice", &warm.id(), WAIT);
    assert_eq!(proxy.connections(), 1);
    assert!(proxy.wait_data_commands(1, WAIT));
    (dovecot, proxy, coid, dir)
}

/// coid closed its announced store connection (with DATA open, so the store keeps
/// nothing of it).
fn announced_connection_dropped(proxy: &FaultProxy) {
    assert!(
        proxy.wait_closed_by_coid(1, WAIT),
        "coid kept the announced store connection"
    );
}

/// Sends `msg` to `rcpts` in one transaction; every recipient must get 250.
fn deliver(coid: &Coid, rcpts: &[&str], msg: &MessageBuilder) {
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        rcpts,
        &msg.build(),
    );
    let codes: Vec<u16> = outcome.data.iter().map(|r| r.0).collect();
    assert_eq!(codes, vec![250; rcpts.len()], "{outcome:?}");
}

#[test]
fn the_store_has_the_envelope_before_the_client_sends_the_message() {
    let (dovecot, proxy, coid, _dir) = warm_stack("");
    let msg = MessageBuilder::new().subject("envelope ahead");
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    assert!(
        proxy.wait_data_commands(2, WAIT),
        "the store saw no DATA before the client sent its message"
    );
    client.send(&data_payload(&msg.build()));
    assert_eq!(client.reply(), 250);
    assert_eq!(client.command("QUIT"), 221);
    dovecot.wait_for_message("alice", &msg.id(), WAIT);
    assert_eq!(dovecot.count_message("alice", &msg.id()), 1);
    assert_eq!(proxy.connections(), 1, "the pooled connection was not used");
    assert_eq!(proxy.data_ends_read(), 2);
}

#[test]
fn a_client_gone_before_its_header_leaves_nothing_in_the_store() {
    let (dovecot, proxy, coid, _dir) = warm_stack("");
    let msg = MessageBuilder::new().subject("never finished");
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    assert!(proxy.wait_data_commands(2, WAIT), "no envelope went ahead");
    let payload = data_payload(&msg.build());
    client.send(payload.get(..20).unwrap_or_default());
    drop(client);
    announced_connection_dropped(&proxy);
    let next = MessageBuilder::new().subject("after the abort");
    deliver(&coid, &["alice@example.org"], &next);
    dovecot.wait_for_message("alice", &next.id(), WAIT);
    assert_eq!(dovecot.count_message("alice", &msg.id()), 0);
    assert_eq!(
        proxy.data_ends_read(),
        2,
        "an end of data for the aborted one"
    );
    assert_eq!(
        proxy.connections(),
        2,
        "the announced connection was pooled again"
    );
}

/// Several recipients are never announced: the message below splits into two
/// folders, and an announced envelope naming both would have to be dropped. Both
/// transactions run on the one pooled connection.
#[test]
fn several_recipients_send_no_envelope_ahead_and_each_gets_its_folder() {
    let (dovecot, proxy, coid, _dir) = warm_stack("");
    coid.user_set("carol@example.org", &["message-filter=none"]);
    let chat = MessageBuilder::chat().subject("two folders");
    deliver(&coid, &["alice@example.org", "carol@example.org"], &chat);
    for (user, folder) in [("alice", "COI/Chats"), ("carol", "INBOX")] {
        let stored = dovecot.wait_for_message(user, &chat.id(), WAIT);
        assert_eq!(stored.mailbox, folder, "{user}");
    }
    assert!(proxy.wait_store_answered(WAIT));
    for user in ["alice", "carol"] {
        assert_eq!(dovecot.count_message(user, &chat.id()), 1, "{user}");
    }
    assert_eq!(proxy.data_ends_read(), 3, "one end of data per folder");
    assert_eq!(proxy.connections(), 1, "a store connection was dropped");
}

#[test]
fn a_recipient_the_policy_discards_gets_nothing_from_the_announced_transaction() {
    let discard = "require [\"envelope\"];\n\
                   if envelope :is \"to\" \"carol@example.org\" { discard; }\n";
    let (dovecot, proxy, coid, _dir) = warm_stack(discard);
    let msg = MessageBuilder::new().subject("not for carol");
    deliver(&coid, &["carol@example.org"], &msg);
    announced_connection_dropped(&proxy);
    let next = MessageBuilder::new().subject("after the discard");
    deliver(&coid, &["alice@example.org"], &next);
    dovecot.wait_for_message("alice", &next.id(), WAIT);
    assert_eq!(dovecot.count_message("carol", &msg.id()), 0, "carol got it");
    assert_eq!(
        proxy.data_ends_read(),
        2,
        "an end of data for the discarded one"
    );
}

#[test]
fn a_recipient_filed_into_two_folders_gets_one_copy_in_each() {
    let two = "require [\"fileinto\", \"copy\", \"mailbox\"];\n\
               fileinto :copy :create \"Other\";\n";
    let (dovecot, proxy, coid, _dir) = warm_stack(two);
    let msg = MessageBuilder::new().subject("two folders, one recipient");
    deliver(&coid, &["alice@example.org"], &msg);
    announced_connection_dropped(&proxy);
    assert!(proxy.wait_store_answered(WAIT));
    let mut folders: Vec<String> = dovecot
        .imap("alice")
        .find_all(&msg.id())
        .into_iter()
        .map(|m| m.mailbox)
        .collect();
    folders.sort();
    assert_eq!(folders, ["INBOX", "Other"]);
}
