//! End to end through real parts: Postfix → coid → Dovecot (with coid's shipped
//! Pigeonhole before-script), results checked over IMAP. Covers plain mail, the three
//! COI chat rules, groups, read receipts, the per-user filter modes, the hierarchy
//! separator, per-recipient verdicts (unknown user, over quota) and header stripping,
//! and coid's metrics and health listener after mail went through.

mod common;

use std::time::{Duration, Instant};

use common::message::chat_message_id;
use common::metrics::{http_get, sample};
use common::stack::{DELIVERY_WAIT, Stack, dovecot_opts};
use common::{DovecotUser, LmtpTarget, MessageBuilder, send_lmtp, unique_message_id};

fn active_stack(separator: &str) -> Stack {
    let stack = Stack::start(dovecot_opts(separator), |_, _| {});
    stack.coid.user_set(
        "alice@example.org",
        &["enabled=yes", "message-filter=active"],
    );
    stack
}

#[test]
fn plain_mail_arrives_in_inbox_unchanged() {
    let stack = active_stack("/");
    let msg = MessageBuilder::new()
        .subject("plain mail")
        .body("Line one\r\n.leading dot\r\n");
    let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &msg);
    assert_eq!(stored.mailbox, "INBOX");
    assert!(!stored.has_flag("$Chat"), "{:?}", stored.flags);
    assert!(
        stored.text().ends_with("Line one\r\n.leading dot\r\n"),
        "{}",
        stored.text()
    );
    assert!(stored.header("X-Coid-Folder").is_none());
    // One info line per message and recipient, under the target operators grep for
    // (`pipeline: delivered`), whichever path the message took through coid.
    let line = common::wait_until(Duration::from_secs(10), || {
        let log = stack.coid.plain_log();
        log.lines()
            .find(|l| {
                l.contains("coid::pipeline: delivered") && l.contains("rcpt=alice@example.org")
            })
            .map(str::to_owned)
    });
    assert!(
        line.is_some(),
        "no delivered line: {}",
        stack.coid.plain_log()
    );
}

#[test]
fn each_chat_rule_files_into_chats_with_keyword() {
    let stack = active_stack("/");
    let by_header = MessageBuilder::chat();
    let by_msgid = MessageBuilder::new().message_id(&chat_message_id());
    let root = chat_message_id();
    let by_refs =
        MessageBuilder::new().header("References", &format!("{root} {}", unique_message_id()));
    for (rule, msg) in [
        ("Chat-Version", by_header),
        ("Message-ID", by_msgid),
        ("References", by_refs),
    ] {
        let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &msg);
        assert_eq!(stored.mailbox, "COI/Chats", "{rule}");
        assert!(stored.has_flag("$Chat"), "{rule}: {:?}", stored.flags);
        assert!(
            stored.header("X-Coid-Folder").is_none(),
            "{rule}: routing header left in the store"
        );
    }
    let mut imap = stack.dovecot.imap("alice");
    assert!(
        imap.subscribed_names().iter().any(|n| n == "COI/Chats"),
        "COI/Chats is not subscribed"
    );
}

#[test]
fn group_chat_and_chat_read_receipt() {
    let stack = active_stack("/");
    let group_id = unique_message_id().replace("<coid-test", "<chat$group.abcdefabcdef12");
    let group = MessageBuilder::chat().message_id(&group_id);
    let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &group);
    assert_eq!(
        (stored.mailbox.as_str(), stored.has_flag("$Chat")),
        ("COI/Chats", true)
    );

    let mdn = MessageBuilder::chat_read_receipt();
    let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &mdn);
    assert!(
        stored.has_flag("$Chat"),
        "a chat MDN is chat: {:?}",
        stored.flags
    );
}

#[test]
fn filter_modes_per_user() {
    let stack = active_stack("/");
    stack
        .coid
        .user_set("bob@example.org", &["enabled=yes", "message-filter=none"]);
    stack
        .coid
        .user_set("carol@example.org", &["enabled=yes", "message-filter=seen"]);
    let rcpts = ["alice@example.org", "bob@example.org", "carol@example.org"];
    let id = stack.send("dave@example.net", &rcpts, &MessageBuilder::chat());
    for (user, folder, chat) in [
        ("alice", "COI/Chats", true),
        ("bob", "INBOX", true),
        ("carol", "INBOX", true),
    ] {
        let stored = stack.dovecot.wait_for_message(user, &id, DELIVERY_WAIT);
        assert_eq!(
            (stored.mailbox.as_str(), stored.has_flag("$Chat")),
            (folder, chat),
            "{user}"
        );
    }
    stack.coid.user_set("bob@example.org", &["enabled=nil"]);
    let chat = MessageBuilder::chat();
    let stored = stack.send_and_wait("dave@example.net", "bob@example.org", &chat);
    assert_eq!(
        (stored.mailbox.as_str(), stored.has_flag("$Chat")),
        ("INBOX", false),
        "COI disabled"
    );
}

#[test]
fn dot_separator_store() {
    let stack = active_stack(".");
    let chat = MessageBuilder::chat();
    let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &chat);
    assert_eq!(stored.mailbox, "COI.Chats");
    let mut imap = stack.dovecot.imap("alice");
    let chats = imap
        .list()
        .into_iter()
        .find(|m| m.name == "COI.Chats")
        .expect("COI.Chats listed");
    assert_eq!(chats.delimiter.as_deref(), Some("."));
}

#[test]
fn per_recipient_verdicts_are_relayed() {
    let dovecot = dovecot_opts("/").with_user(DovecotUser::new("carol@example.org").over_quota());
    let stack = Stack::start(dovecot, |_, _| {});
    let msg = MessageBuilder::chat().build();
    let rcpts = [
        "alice@example.org",
        "dave@example.org",
        "carol@example.org",
        "bob+tag@example.org",
    ];
    let outcome = send_lmtp(
        LmtpTarget::Tcp(stack.coid.lmtp_addr()),
        "x@example.net",
        &rcpts,
        &msg,
    );
    let verdicts = outcome.verdicts(&rcpts);
    let codes: Vec<u16> = verdicts.iter().map(|(_, r)| r.0).collect();
    assert_eq!(codes, [250, 550, 552, 250], "{verdicts:?}");
    assert!(
        verdicts
            .get(1)
            .is_some_and(|(_, r)| r.1.starts_with("5.1.1")),
        "{verdicts:?}"
    );
    assert!(
        verdicts
            .get(2)
            .is_some_and(|(_, r)| r.1.starts_with("5.2.2")),
        "{verdicts:?}"
    );
}

/// DATA goes to Dovecot in the same write as MAIL and RCPT; when Dovecot refuses every
/// recipient it refuses DATA too, and the pooled connection stays in step: the next
/// message on it is delivered.
#[test]
fn a_message_every_recipient_of_which_is_refused_leaves_the_connection_usable() {
    let stack = Stack::start(dovecot_opts("/"), |_, _| {});
    let target = || LmtpTarget::Tcp(stack.coid.lmtp_addr());
    let id = unique_message_id();
    let msg = MessageBuilder::chat().message_id(&id).build();
    let refused = ["dave@example.org", "erin@example.org"];
    let outcome = send_lmtp(target(), "x@example.net", &refused, &msg);
    let codes: Vec<u16> = outcome
        .verdicts(&refused)
        .iter()
        .map(|(_, r)| r.0)
        .collect();
    assert_eq!(codes, [550, 550], "{outcome:?}");
    for _ in 0..2 {
        let outcome = send_lmtp(target(), "x@example.net", &["alice@example.org"], &msg);
        let codes: Vec<u16> = outcome
            .verdicts(&["alice@example.org"])
            .iter()
            .map(|(_, r)| r.0)
            .collect();
        assert_eq!(codes, [250], "{outcome:?}");
    }
    assert_eq!(stack.dovecot.count_message("alice@example.org", &id), 2);
}

#[test]
fn unix_socket_listener_and_incoming_routing_headers_are_stripped() {
    let stack = active_stack("/");
    let msg = MessageBuilder::new()
        .header("X-Coid-Folder", "Trash")
        .header("X-Coid-Flags", "\\Deleted")
        .header("x-coid-create", "yes");
    let id = msg.id();
    let outcome = send_lmtp(
        LmtpTarget::Unix(stack.coid.socket_path()),
        "x@example.net",
        &["alice@example.org"],
        &msg.build(),
    );
    assert_eq!(outcome.data.first().map(|r| r.0), Some(250), "{outcome:?}");
    let stored = stack.dovecot.wait_for_message("alice", &id, DELIVERY_WAIT);
    assert_eq!(stored.mailbox, "INBOX");
    assert!(!stored.has_flag("\\Deleted"));
    assert!(
        !stored.text().to_ascii_lowercase().contains("x-coid-"),
        "{}",
        stored.text()
    );
}

#[test]
fn metrics_count_chat_and_plain_mail_and_health_is_ok() {
    let stack = active_stack("/");
    let chat = stack.send_and_wait(
        "bob@example.net",
        "alice@example.org",
        &MessageBuilder::chat(),
    );
    assert_eq!(chat.mailbox, "COI/Chats");
    let plain = MessageBuilder::new().subject("plain mail, counted");
    let plain = stack.send_and_wait("bob@example.net", "alice@example.org", &plain);
    assert_eq!(plain.mailbox, "INBOX");

    let addr = stack.coid.metrics_addr();
    let (status, body) = http_get(addr, "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"), "/health");
    // coid counts a message right after the store's reply, so the store may show it a
    // moment before the counter moves.
    let expected = [
        (r#"coid_messages_total{class="chat"}"#, 1.0),
        (r#"coid_messages_total{class="email"}"#, 1.0),
        (
            r#"coid_deliveries_total{class="chat",outcome="delivered"}"#,
            1.0,
        ),
        (
            r#"coid_deliveries_total{class="email",outcome="delivered"}"#,
            1.0,
        ),
        (
            r#"coid_deliveries_total{class="chat",outcome="deferred"}"#,
            0.0,
        ),
        (r#"coid_delivery_duration_seconds_count"#, 2.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "/metrics: {text}");
        let seen: Vec<Option<f64>> = expected.iter().map(|(s, _)| sample(&text, s)).collect();
        let want: Vec<Option<f64>> = expected.iter().map(|(_, v)| Some(*v)).collect();
        if seen == want {
            assert!(text.contains("# TYPE coid_messages counter"), "{text}");
            assert!(text.ends_with("# EOF\n"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected {expected:?}, got {seen:?} in\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
