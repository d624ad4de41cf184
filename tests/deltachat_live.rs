//! Live Delta Chat through the real stack: three real Delta Chat clients
//! (`deltachat-rpc-server` 2.65.0, driven by `tests/deltachat/dc_scenario.py`) talk
//! SMTP to real Postfix and IMAP to real Dovecot, with coid in between. This checks
//! that coid classifies what today's Delta Chat really sends (SecureJoin, encrypted
//! 1:1 and group messages, read receipts, reactions, large files), not only the
//! captured fixtures, and that the clients still work with coid in their path.
//!
//! Dovecot has coid's shipped METADATA snippet, so the clients see METADATA and
//! XDELTAPUSH and read the server entries (`maxsmtprecipients` ...) through coid's
//! dict proxy; the test checks that those reads reached coid and found their values.
//!
//! Delta Chat reads INBOX, so its users keep chats there: alice and bob have
//! `message-filter=none` (chats get `$Chat` in INBOX), carol has COI disabled (no
//! `$Chat`). Postfix gives dave, who runs no client, a copy of every message
//! (`always_bcc`, in the same LMTP transaction); dave's filter is `active`, so every
//! Delta Chat message must land in `COI/Chats` with `$Chat`, while plain mail sent
//! in the same run must stay in INBOX without it. So the test fails both if coid
//! misses Delta Chat mail and if it tags everything.
//!
//! Needs `COID_DC_PYTHON` (the venv python `tests/run.sh` sets up) and a network
//! namespace with only loopback (`tests/run.sh` provides one): Delta Chat core can
//! reach the Internet on its own. Without either the test fails; it never skips.

mod common;
#[path = "deltachat/live.rs"]
mod live;

use std::time::Instant;

use common::dc_flow::{has_field, server_entry_reads};
use common::stack::{DELIVERY_WAIT as WAIT, Stack};
use common::{MessageBuilder, StoredMessage};
use live::{OBSERVER, addr};

const CHATS: &str = "COI/Chats";
/// SecureJoin for the 1:1 chat and for the group (4 messages each) plus bob's
/// read receipt: messages the clients send on their own, on top of `sent`.
const MIN_AUTOMATIC: usize = 9;

/// The server entry whose reads the test looks for in coid's log.
const MAXSMTP: &str = "/shared/vendor/deltachat/maxsmtprecipients";

/// Where a user's copies of a message are: (mailbox, has `$Chat`) per copy.
type Placement = Vec<(String, bool)>;

/// `user`'s copies of a message (waits until there is at least one).
fn placement(stack: &Stack, user: &str, message_id: &str) -> Placement {
    stack.dovecot.wait_for_message(user, message_id, WAIT);
    let copies = stack.dovecot.imap(user).find_all(message_id);
    let place = |m: &StoredMessage| (m.mailbox.clone(), m.has_flag("$Chat"));
    copies.iter().map(place).collect()
}

/// A single copy in `mailbox`, with or without `$Chat`.
fn only(mailbox: &str, chat: bool) -> Placement {
    vec![(mailbox.to_owned(), chat)]
}

/// Plain mail to bob (dave gets a copy): a text mail and a Thunderbird-style
/// OpenPGP/MIME one (real To, Subject `...`, Message-ID at a real domain).
fn plain_mails() -> Vec<MessageBuilder> {
    let text = MessageBuilder::new().to(&addr("bob")).subject("plain mail");
    let pgp = MessageBuilder::new()
        .to(&addr("bob"))
        .subject("...")
        .set(
            "Content-Type",
            "multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"",
        )
        .body("--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--b--\r\n");
    vec![text, pgp]
}

#[test]
fn real_delta_chat_messages_are_tagged_and_filed() {
    live::require_loopback_only();
    let python = live::dc_python();
    let began = Instant::now();
    let running = live::start_stack();
    let stack = &running.stack;
    for user in ["alice", "bob"] {
        let settings = ["enabled=yes", "message-filter=none"];
        stack.coid.user_set(&addr(user), &settings);
    }
    stack.coid.user_set(&addr("carol"), &["enabled=nil"]);
    let settings = ["enabled=yes", "message-filter=active"];
    stack.coid.user_set(&addr(OBSERVER), &settings);

    let mut dir = common::make_run_dir("coid-dc-");
    if common::keep_dirs() {
        dir.disable_cleanup(true);
        eprintln!(
            "[coid-test] keeping Delta Chat dir {}",
            dir.path().display()
        );
    }
    let summary = live::run_scenario(stack, &python, dir.path());
    let version = summary.core_version();
    eprintln!(
        "[coid-test] Delta Chat {version}: scenario ok after {:?}",
        began.elapsed()
    );

    // Plain mail in the same run: no $Chat, stays in INBOX.
    for mail in plain_mails() {
        let id = stack.send("x@example.net", &[&addr("bob")], &mail);
        for user in ["bob", OBSERVER] {
            let got = placement(stack, user, &id);
            assert_eq!(got, only("INBOX", false), "plain mail {id} for {user}");
        }
    }
    let queue = stack.postfix.wait_for_empty_queue(WAIT);
    queue.expect("Postfix delivered everything");

    // Encrypted 1:1 and group chat as the receiving clients keep them.
    let one_to_one = summary.message_id("encrypted-1to1");
    let got = placement(stack, "bob", &one_to_one);
    assert_eq!(got, only("INBOX", true), "bob: encrypted 1:1 {one_to_one}");
    let group = summary.message_id("encrypted-group");
    let got = placement(stack, "bob", &group);
    assert_eq!(got, only("INBOX", true), "bob: encrypted group {group}");
    let got = placement(stack, "carol", &group);
    assert_eq!(got, only("INBOX", false), "carol (COI off): group {group}");
    let reply = summary.message_id("encrypted-group-reply");
    let got = placement(stack, "alice", &reply);
    assert_eq!(got, only("INBOX", true), "alice: group reply {reply}");

    // dave (filter active) has every message a client sent filed as chat...
    let sent = summary.all_sent();
    assert!(sent.len() >= 7, "too few messages in the summary: {sent:?}");
    for m in &sent {
        let got = placement(stack, OBSERVER, &m.message_id);
        let what = format!("dave: {} sent by {} ({})", m.message_id, m.sender, m.step);
        assert_eq!(got, only(CHATS, true), "{what}");
    }
    // ...and so are the ones the clients sent on their own (SecureJoin, read
    // receipts, "member added", multi-device sync): only plain mail is in INBOX.
    let mut imap = stack.dovecot.imap(OBSERVER);
    let inbox = imap.fetch_all("INBOX");
    assert_eq!(
        inbox.len(),
        plain_mails().len(),
        "dave's INBOX: plain mail only; it holds:\n{}\ncoid on these:\n{}\nDovecot's errors: {:?}",
        outer_headers(&inbox),
        coid_lines(stack, &inbox),
        stack.dovecot.log_errors()
    );
    let chats = imap.fetch_all(CHATS);
    let untagged: Vec<Option<String>> = chats
        .iter()
        .filter(|m| !m.has_flag("$Chat"))
        .map(|m| m.header("Message-ID"))
        .collect();
    assert!(
        untagged.is_empty(),
        "in {CHATS} without $Chat: {untagged:?}"
    );
    assert!(
        chats.len() >= sent.len() + MIN_AUTOMATIC,
        "{} messages in dave's {CHATS}; expected the {} sent plus at least {MIN_AUTOMATIC}",
        chats.len(),
        sent.len()
    );
    server_entries_were_read(stack);
    let total = began.elapsed();
    eprintln!(
        "[coid-test] dave: {} Delta Chat messages in {CHATS}; {total:?}",
        chats.len()
    );
}

/// The outer headers that decide a message's class, one message per line, for an
/// assertion to name the message that went astray.
fn outer_headers(messages: &[StoredMessage]) -> String {
    let names = [
        "Message-ID",
        "Subject",
        "To",
        "Cc",
        "Content-Type",
        "Chat-Version",
    ];
    let line = |m: &StoredMessage| {
        let fields = names.map(|n| format!("{n}: {:?}", m.header(n)));
        format!("  uid {}: {}", m.uid, fields.join("; "))
    };
    messages.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// coid's log lines about these messages (by Message-ID), for an assertion message.
fn coid_lines(stack: &Stack, messages: &[StoredMessage]) -> String {
    let log = stack.coid.plain_log();
    let ids: Vec<String> = messages
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .map(|id| id.trim().trim_matches(['<', '>']).to_owned())
        .collect();
    let about = |l: &&str| ids.iter().any(|id| l.contains(id.as_str()));
    log.lines().filter(about).collect::<Vec<_>>().join("\n")
}

/// The clients' GETMETADATA of the server entries went through coid and found
/// `maxsmtprecipients`, and Dovecot logged no error about it.
fn server_entries_were_read(stack: &Stack) {
    let reads = server_entry_reads(&stack.coid.plain_log(), MAXSMTP);
    assert!(
        reads.iter().any(|l| has_field(l, "found", "true")),
        "no `server entry read` of {MAXSMTP} with found=true in coid's log: {reads:?}"
    );
    let suspects = ["maxsmtprecipients", "metadata", "dict"];
    let errors: Vec<String> = stack.dovecot.log_errors();
    let related: Vec<&String> = errors
        .iter()
        .filter(|l| suspects.iter().any(|s| l.to_ascii_lowercase().contains(s)))
        .collect();
    assert!(related.is_empty(), "Dovecot METADATA errors: {related:?}");
}
