//! Smoke tests of the integration-test harness in `tests/common`, run against
//! real Dovecot and Postfix (as root, on loopback).
//!
//! They check that the harness itself works (LMTP over TCP and unix socket,
//! the Postfix -> Dovecot "direct path", IMAP inspection, parallel stacks),
//! and they pin down Dovecot/Pigeonhole behaviour that coid relies on:
//! per-recipient LMTP verdicts (unknown user, over quota), Sieve `fileinto
//! :create` with keywords under both hierarchy separators, whether
//! `lda_mailbox_autosubscribe` applies to Sieve-created folders, whether a
//! global before-script may use `editheader`, and what a folder name with the
//! wrong separator does.

mod common;

use std::time::{Duration, Instant};

use common::{
    Dovecot, DovecotOpts, DovecotUser, LmtpTarget, MessageBuilder, Postfix, PostfixOpts,
    SieveScript, send_lmtp, send_smtp,
};
use rstest::rstest;

const SENDER: &str = "sender@example.net";
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const DAVE: &str = "dave@example.org";
const WAIT: Duration = Duration::from_secs(10);

/// A before-script that files `X-Test-Route: chats` mail into COI<sep>Chats
/// with the `$Chat` keyword.
fn chats_script(separator: &str, extra_actions: &str, extra_require: &str) -> String {
    format!(
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"{extra_require}];\n\
         if header :is \"X-Test-Route\" \"chats\" {{\n\
         {extra_actions}\
         \x20 fileinto :create :flags \"$Chat\" \"COI{separator}Chats\";\n\
         \x20 stop;\n\
         }}\n"
    )
}

fn chat_message() -> MessageBuilder {
    MessageBuilder::new()
        .subject("chat")
        .header("X-Test-Route", "chats")
}

#[rstest]
#[case::tcp(false)]
#[case::unix_socket(true)]
fn lmtp_gives_one_verdict_per_recipient(#[case] via_socket: bool) {
    let dovecot = Dovecot::start(DovecotOpts::default());
    eprintln!("[timing] Dovecot start: {:?}", dovecot.startup_time());
    let target: LmtpTarget = if via_socket {
        dovecot.lmtp_socket().into()
    } else {
        dovecot.lmtp_tcp().into()
    };
    let message = MessageBuilder::new().to(ALICE);
    let id = message.id();

    let outcome = send_lmtp(target, SENDER, &[ALICE, DAVE], &message.build());
    eprintln!("[lmtp] {outcome:?}");

    assert_eq!(
        outcome.rcpt[0].0, 250,
        "alice accepted at RCPT: {outcome:?}"
    );
    assert_eq!(outcome.rcpt[1].0, 550, "dave refused at RCPT: {outcome:?}");
    assert!(outcome.rcpt[1].1.starts_with("5.1.1"), "{outcome:?}");
    assert_eq!(outcome.data.len(), 1, "one reply per accepted RCPT");
    assert_eq!(outcome.data[0].0, 250, "{outcome:?}");

    let stored = dovecot.wait_for_message(ALICE, &id, WAIT);
    assert_eq!(stored.mailbox, "INBOX");
    assert_eq!(
        dovecot.count_message(ALICE, &id),
        1,
        "delivered exactly once"
    );
    dovecot.assert_no_log_errors();
}

#[rstest]
#[case::inet(false)]
#[case::unix_socket(true)]
fn postfix_delivers_straight_to_dovecot(#[case] via_socket: bool) {
    let dovecot = Dovecot::start(DovecotOpts::default());
    let next_hop = if via_socket {
        dovecot.lmtp_transport_unix()
    } else {
        dovecot.lmtp_transport_inet()
    };
    let postfix = Postfix::start(PostfixOpts::new(&next_hop));
    eprintln!(
        "[timing] Dovecot start: {:?}, Postfix start: {:?}",
        dovecot.startup_time(),
        postfix.startup_time()
    );
    let message = MessageBuilder::new().to(ALICE).header("Cc", BOB);
    let id = message.id();

    let sent = Instant::now();
    send_smtp(
        postfix.smtp_port(),
        SENDER,
        &[ALICE, BOB, DAVE],
        &message.build(),
    )
    .expect("Postfix accepts alice, bob and dave at SMTP time");
    for user in [ALICE, BOB] {
        let stored = dovecot.wait_for_message(user, &id, WAIT);
        assert_eq!(stored.mailbox, "INBOX");
    }
    eprintln!(
        "[timing] SMTP -> Postfix -> Dovecot -> IMAP: {:?}",
        sent.elapsed()
    );

    postfix
        .wait_for_empty_queue(WAIT)
        .expect("alice and bob delivered, dave bounced");
    let log = postfix.log();
    let dave_line = log
        .lines()
        .find(|l| l.contains("to=<dave@example.org>") && l.contains("status=bounced"))
        .unwrap_or_else(|| panic!("no bounce for dave in the Postfix log:\n{log}"));
    eprintln!("[postfix] {dave_line}");
    assert!(dave_line.contains("5.1.1"), "{dave_line}");
}

#[rstest]
#[case::slash("/")]
#[case::dot(".")]
fn sieve_before_files_chats_with_keyword(#[case] separator: &str) {
    // Given as a file here, to exercise that variant of the option.
    let script_file = tempfile::NamedTempFile::new().expect("creating a temporary Sieve file");
    std::fs::write(script_file.path(), chats_script(separator, "", ""))
        .expect("writing the temporary Sieve file");
    let opts = DovecotOpts {
        separator: separator.to_owned(),
        sieve_before: Some(SieveScript::File(script_file.path().to_owned())),
        ..DovecotOpts::default()
    };
    let dovecot = Dovecot::start(opts);
    let chat = chat_message();
    let plain = MessageBuilder::new();

    for message in [&chat, &plain] {
        let outcome = send_lmtp(dovecot.lmtp_tcp(), SENDER, &[ALICE], &message.build());
        assert_eq!(outcome.data[0].0, 250, "{outcome:?}");
    }

    let folder = dovecot.mailbox_name(&["COI", "Chats"]);
    let stored = dovecot.wait_for_message(ALICE, &chat.id(), WAIT);
    assert_eq!(stored.mailbox, folder);
    assert!(stored.has_flag("$Chat"), "flags: {:?}", stored.flags);
    let unrouted = dovecot.wait_for_message(ALICE, &plain.id(), WAIT);
    assert_eq!(unrouted.mailbox, "INBOX");
    assert!(!unrouted.has_flag("$Chat"));

    let mut imap = dovecot.imap(ALICE);
    let listed = imap.list();
    let chats = listed
        .iter()
        .find(|m| m.name == folder)
        .unwrap_or_else(|| panic!("{folder} not listed: {listed:?}"));
    assert_eq!(chats.delimiter.as_deref(), Some(separator));
    dovecot.assert_no_log_errors();
}

#[rstest]
#[case::checked_at_rcpt(true)]
#[case::checked_after_data(false)]
fn over_quota_recipient_gets_its_own_5xx(#[case] rcpt_check_quota: bool) {
    let opts = DovecotOpts {
        lmtp_rcpt_check_quota: rcpt_check_quota,
        ..DovecotOpts::default()
    }
    .with_user(DovecotUser::new(CAROL).over_quota());
    let dovecot = Dovecot::start(opts);
    let message = MessageBuilder::new().to(ALICE).header("Cc", CAROL);
    let id = message.id();

    let rcpts = [ALICE, CAROL];
    let outcome = send_lmtp(dovecot.lmtp_tcp(), SENDER, &rcpts, &message.build());
    eprintln!("[quota rcpt_check={rcpt_check_quota}] {outcome:?}");

    let verdicts = outcome.verdicts(&rcpts);
    assert_eq!(verdicts[0].1.0, 250, "alice: {verdicts:?}");
    assert_eq!(verdicts[1].1.0, 552, "carol: {verdicts:?}");
    assert!(verdicts[1].1.1.starts_with("5.2.2"), "{verdicts:?}");
    if rcpt_check_quota {
        assert_eq!(outcome.rcpt[1].0, 552, "refused at RCPT time");
        assert_eq!(outcome.data.len(), 1);
    } else {
        assert_eq!(outcome.rcpt[1].0, 250, "accepted at RCPT time");
        assert_eq!(outcome.data.len(), 2);
    }

    dovecot.wait_for_message(ALICE, &id, WAIT);
    assert_eq!(dovecot.count_message(CAROL, &id), 0);
}

/// Pigeonhole check: does `fileinto :create` subscribe the folder it creates
/// when `lda_mailbox_autosubscribe = yes` (and `lda_mailbox_autocreate = no`)?
#[rstest]
#[case::autosubscribe(true)]
#[case::no_autosubscribe(false)]
fn sieve_create_subscribes_only_with_autosubscribe(#[case] autosubscribe: bool) {
    let opts = DovecotOpts {
        lda_mailbox_autosubscribe: autosubscribe,
        lda_mailbox_autocreate: false,
        ..DovecotOpts::default()
    }
    .with_sieve_before(&chats_script("/", "", ""));
    let dovecot = Dovecot::start(opts);
    let chat = chat_message();
    send_lmtp(dovecot.lmtp_tcp(), SENDER, &[ALICE], &chat.build());
    let stored = dovecot.wait_for_message(ALICE, &chat.id(), WAIT);
    assert_eq!(stored.mailbox, "COI/Chats");

    let subscribed = dovecot.imap(ALICE).subscribed_names();
    eprintln!("[autosubscribe={autosubscribe}] LSUB: {subscribed:?}");
    assert_eq!(
        subscribed.iter().any(|name| name == "COI/Chats"),
        autosubscribe,
        "LSUB: {subscribed:?}"
    );
    dovecot.assert_no_log_errors();
}

/// With the "." separator a Sieve `fileinto "COI/Chats"` is an invalid name:
/// Pigeonhole logs an error, keeps the message in INBOX, and LMTP still says
/// 250. Scripts must spell folder names with the namespace's separator.
#[test]
fn slash_folder_name_under_dot_separator_falls_back_to_inbox() {
    let opts = DovecotOpts {
        separator: ".".to_owned(),
        ..DovecotOpts::default()
    }
    .with_sieve_before(&chats_script("/", "", ""));
    let dovecot = Dovecot::start(opts);
    let chat = chat_message();
    let outcome = send_lmtp(dovecot.lmtp_tcp(), SENDER, &[ALICE], &chat.build());
    assert_eq!(outcome.data[0].0, 250, "{outcome:?}");

    let stored = dovecot.wait_for_message(ALICE, &chat.id(), WAIT);
    assert_eq!(stored.mailbox, "INBOX");
    assert!(!stored.has_flag("$Chat"), "flags: {:?}", stored.flags);
    let errors = dovecot.log_errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("Name must not have '/' characters")),
        "{errors:?}"
    );
}

/// Pigeonhole check: with `sieve_global_extensions = +editheader` a global
/// before-script may delete the routing header before storing.
#[test]
fn before_script_can_delete_header_with_global_editheader() {
    let script = chats_script(
        "/",
        "  deleteheader \"X-Test-Route\";\n",
        ", \"editheader\"",
    );
    let opts = DovecotOpts {
        sieve_global_extensions: Some("+editheader".to_owned()),
        ..DovecotOpts::default()
    }
    .with_sieve_before(&script);
    let dovecot = Dovecot::start(opts);
    let chat = chat_message();
    send_lmtp(dovecot.lmtp_tcp(), SENDER, &[ALICE], &chat.build());

    let stored = dovecot.wait_for_message(ALICE, &chat.id(), WAIT);
    assert_eq!(stored.mailbox, "COI/Chats");
    assert!(stored.has_flag("$Chat"));
    assert!(
        stored.header("X-Test-Route").is_none(),
        "header still present:\n{}",
        stored.text()
    );
    assert_eq!(stored.header("Subject").as_deref(), Some("chat"));
    dovecot.assert_no_log_errors();
}

/// Without `sieve_global_extensions = +editheader` the same script does not
/// even compile, and `Dovecot::start` says so.
#[test]
#[should_panic(expected = "unknown Sieve capability `editheader'")]
fn editheader_needs_the_global_extension() {
    let script = chats_script(
        "/",
        "  deleteheader \"X-Test-Route\";\n",
        ", \"editheader\"",
    );
    Dovecot::start(DovecotOpts::default().with_sieve_before(&script));
}

#[test]
fn imap_metadata_round_trip() {
    let dovecot = Dovecot::start(DovecotOpts::default());
    let mut imap = dovecot.imap(ALICE);
    assert!(
        imap.capabilities().iter().any(|c| c == "METADATA"),
        "{:?}",
        imap.capabilities()
    );

    imap.set_metadata("", "/private/comment", Some("server note"));
    imap.set_metadata("INBOX", "/private/comment", Some("inbox note"));
    assert_eq!(
        imap.get_metadata(None, "/private/comment").as_deref(),
        Some("server note")
    );
    assert_eq!(
        imap.get_metadata(Some("INBOX"), "/private/comment")
            .as_deref(),
        Some("inbox note")
    );
    let raw = imap
        .raw_command("GETMETADATA \"INBOX\" (/private/comment)")
        .expect("raw GETMETADATA");
    assert!(raw.contains("inbox note"), "{raw}");

    imap.set_metadata("INBOX", "/private/comment", None);
    assert_eq!(imap.get_metadata(Some("INBOX"), "/private/comment"), None);
    assert!(
        imap.raw_command("GETMETADATA \"nope\" (/private/comment)")
            .is_err()
    );
}

#[test]
fn parallel_stacks_do_not_interfere() {
    let stacks: Vec<Dovecot> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Dovecot::start(DovecotOpts::default())))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("starting Dovecot in a thread"))
            .collect()
    });
    let mut ports: Vec<u16> = stacks
        .iter()
        .flat_map(|d| [d.imap_port(), d.lmtp_tcp().port()])
        .collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6, "every stack has its own ports");

    let ids: Vec<String> = stacks
        .iter()
        .map(|dovecot| {
            let message = MessageBuilder::new();
            send_lmtp(dovecot.lmtp_tcp(), SENDER, &[BOB], &message.build());
            message.id()
        })
        .collect();
    for (n, dovecot) in stacks.iter().enumerate() {
        dovecot.wait_for_message(BOB, &ids[n], WAIT);
        for (m, id) in ids.iter().enumerate() {
            let expected = usize::from(m == n);
            assert_eq!(dovecot.count_message(BOB, id), expected);
        }
    }
}

#[test]
fn data_payload_is_dot_stuffed_with_crlf() {
    let payload = common::smtp::data_payload(b"a\n.b\r\n..c\nend");
    assert_eq!(payload, b"a\r\n..b\r\n...c\r\nend\r\n.\r\n".to_vec());
}

#[test]
fn queue_listing_is_parsed() {
    let listing = "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n\
                   4F2A31C0B2A*     312 Sat Nov 21 01:10:00  sender@example.net\n\
                   \x20                                        alice@example.org\n\n\
                   7B1C2D3E4F!      400 Sat Nov 21 01:10:01  sender@example.net\n\
                   (connect to 127.0.0.1[127.0.0.1]:1: Connection refused)\n\
                   \x20                                        bob@example.org\n\n\
                   -- 1 Kbytes in 2 Requests.\n";
    assert_eq!(
        common::postfix::parse_queue_ids(listing),
        vec!["4F2A31C0B2A", "7B1C2D3E4F"]
    );
    assert!(common::postfix::parse_queue_ids("Mail queue is empty\n").is_empty());
}
