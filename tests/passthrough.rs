//! What coid must leave alone and what it must still recognise, end to end through
//! real Postfix → coid → Dovecot (with coid's shipped Pigeonhole before-script):
//! * a user's own Pigeonhole rules still run for plain mail;
//! * 8-bit and UTF-8 mail (RFC 6152 BODY=8BITMIME, RFC 6531 SMTPUTF8) reaches the
//!   store byte for byte;
//! * real Delta Chat mail, as a real client sent it (fixtures under
//!   `tests/data/eml/deltachat/`), is tagged and filed like any chat.

mod common;

use common::message::deltachat_fixture;
use common::stack::{DELIVERY_WAIT, Stack, dovecot_opts};
use common::{MessageBuilder, send_smtp_with};

/// Files plain mail about invoices into a folder of the user's own.
const PERSONAL_SCRIPT: &str = "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\n\
    if header :contains \"subject\" \"invoice\" {\n\
    \x20 fileinto :create :flags \"$Invoice\" \"Invoices\";\n\
    \x20 stop;\n\
    }\n";

#[test]
fn users_own_sieve_rules_still_run_for_plain_mail() {
    let stack = Stack::start(dovecot_opts("/"), |_, _| {});
    stack.coid.user_set(
        "alice@example.org",
        &["enabled=yes", "message-filter=active"],
    );
    stack
        .dovecot
        .install_user_sieve("alice@example.org", PERSONAL_SCRIPT);

    let plain = MessageBuilder::new().subject("Your invoice 42");
    let stored = stack.send_and_wait("shop@example.net", "alice@example.org", &plain);
    assert_eq!(stored.mailbox, "Invoices", "the user's rule did not run");
    assert!(stored.has_flag("$Invoice"), "{:?}", stored.flags);
    assert!(!stored.has_flag("$Chat"), "{:?}", stored.flags);

    // A chat is routed by coid's policy; its decision is final (README, "Policy").
    let chat = MessageBuilder::chat().subject("invoice chat");
    let stored = stack.send_and_wait("bob@example.net", "alice@example.org", &chat);
    assert_eq!(stored.mailbox, "COI/Chats");
    assert!(stored.has_flag("$Chat") && !stored.has_flag("$Invoice"));
}

#[test]
fn eight_bit_and_utf8_mail_arrive_byte_for_byte() {
    let stack = Stack::start(dovecot_opts("/"), |_, _| {});
    let body = "Grüße aus Köln, 東京 und Zürich.\r\n\u{1F600} ends here.\r\n";
    let msg = MessageBuilder::new()
        .set("From", "Jörg <jörg@exämple.net>")
        .subject("Übergrößenträger 日本語")
        .set("Content-Type", "text/plain; charset=utf-8")
        .set("Content-Transfer-Encoding", "8bit")
        .body(body);
    let id = msg.id();
    let raw = msg.build();
    send_smtp_with(
        stack.postfix.smtp_port(),
        "joerg@example.net",
        " BODY=8BITMIME SMTPUTF8",
        &["alice@example.org"],
        &raw,
    )
    .expect("Postfix accepts SMTPUTF8 mail");
    let stored = stack.dovecot.wait_for_message("alice", &id, DELIVERY_WAIT);

    assert_eq!(stored.mailbox, "INBOX");
    let sent_headers = header_block(&raw);
    let stored_headers = header_block(&stored.raw);
    assert!(
        stored_headers.ends_with(sent_headers),
        "the sender's header block is not the tail of the stored one:\n{}",
        stored.text()
    );
    assert!(
        stored.raw.ends_with(body.as_bytes()),
        "8-bit body changed:\n{}",
        stored.text()
    );
}

/// Dovecot 2.3 has no SMTPUTF8 and would store a UTF-8 sender as `Return-Path: <>`:
/// coid refuses such an envelope with RFC 6531's 553 5.6.7, as Postfix does when it
/// talks to Dovecot directly, instead of changing it silently.
#[test]
fn utf8_envelope_the_store_cannot_take_is_refused_not_altered() {
    let stack = Stack::start(dovecot_opts("/"), |_, _| {});
    let msg = MessageBuilder::new().subject("UTF-8 sender");
    let id = msg.id();
    send_smtp_with(
        stack.postfix.smtp_port(),
        "jörg@exämple.net",
        " SMTPUTF8",
        &["alice@example.org"],
        &msg.build(),
    )
    .expect("Postfix accepts SMTPUTF8 mail");
    let bounced = common::wait_until(DELIVERY_WAIT, || {
        let log = stack.postfix.log();
        log.lines()
            .find(|l| l.contains("to=<alice@example.org>") && l.contains("status="))
            .map(str::to_owned)
    })
    .expect("a delivery attempt in the Postfix log");
    assert!(
        bounced.contains("dsn=5.6.7, status=bounced") && bounced.contains("553 5.6.7"),
        "{bounced}"
    );
    assert_eq!(stack.dovecot.count_message("alice", &id), 0);
}

/// The header block of a raw message, without the blank line.
fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header/body separator");
    &raw[..end + 2]
}

#[test]
fn real_delta_chat_mail_is_tagged_and_filed() {
    let stack = Stack::start(dovecot_opts("/"), |_, _| {});
    stack
        .coid
        .user_set("bob@example.org", &["enabled=yes", "message-filter=active"]);
    stack
        .coid
        .user_set("alice@example.org", &["enabled=yes", "message-filter=none"]);
    for name in ["encrypted-1to1.eml", "encrypted-group.eml", "mdn.eml"] {
        let raw = deltachat_fixture(name);
        let id = message_id(&raw);
        common::send_smtp(
            stack.postfix.smtp_port(),
            "carol@example.org",
            &["bob@example.org", "alice@example.org"],
            &raw,
        )
        .expect("Postfix accepts");
        let active = stack.dovecot.wait_for_message("bob", &id, DELIVERY_WAIT);
        assert_eq!(active.mailbox, "COI/Chats", "{name} for an active user");
        assert!(active.has_flag("$Chat"), "{name}: {:?}", active.flags);
        let none = stack.dovecot.wait_for_message("alice", &id, DELIVERY_WAIT);
        assert_eq!(none.mailbox, "INBOX", "{name} for a `none` user");
        assert!(none.has_flag("$Chat"), "{name}: {:?}", none.flags);
    }
}

fn message_id(raw: &[u8]) -> String {
    common::imap::header_values(raw, "Message-ID")
        .into_iter()
        .next()
        .expect("fixture has a Message-ID")
}
