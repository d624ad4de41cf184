//! Input built to break coid, sent the way an attacker can send it: raw LMTP to coid,
//! and SMTP through real Postfix, in front of real Dovecot running coid's shipped
//! Pigeonhole before-script (`conf.d/dovecot/coid.sieve`). The regression tests of
//! issue 12:
//! * a message with no header section is delivered as plain mail, and the session
//!   goes on (it used to panic inside mail-parser and drop the connection);
//! * no sender byte can extend, replace or add a trusted `X-Coid-*` header: not a
//!   leading continuation line (it used to continue coid's `X-Coid-Flags`), nor a
//!   copy hidden behind a line Dovecot still reads as a header.

mod common;

use common::coid::{Coid, CoidOpts};
use common::stack::dovecot_opts;
use common::{Dovecot, LmtpTarget, StoredMessage, try_send_lmtp_each};

/// Dovecot with the shipped before-script and coid in front of it, COI active for
/// every user (so a chat would be routed with trusted headers).
fn coid_and_dovecot() -> (Coid, Dovecot) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let mut opts = CoidOpts::dovecot(&dovecot.lmtp_socket().display().to_string());
    opts.coi_enabled = true;
    opts.message_filter = "active".into();
    (Coid::start(opts), dovecot)
}

/// The one message in `user`'s INBOX whose text contains `marker`.
fn in_inbox(dovecot: &Dovecot, user: &str, marker: &str) -> StoredMessage {
    let found: Vec<StoredMessage> = dovecot
        .imap(user)
        .fetch_all("INBOX")
        .into_iter()
        .filter(|m| m.text().contains(marker))
        .collect();
    assert_eq!(found.len(), 1, "{user}: {marker} in INBOX: {found:?}");
    found.into_iter().next().expect("one message")
}

#[test]
fn a_message_without_a_header_is_plain_mail_and_the_session_goes_on() {
    let (coid, dovecot) = coid_and_dovecot();
    // Past `lmtp.spool_threshold` (256 KiB): read from the spool file, not memory.
    let spooled = format!(
        "\r\nheaderless-spooled\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(5000)
    );
    let messages: [&[u8]; 4] = [
        b"\r\nheaderless-small: the first line is empty\r\n",
        spooled.as_bytes(),
        b"headerless-no-colon\r\n",
        b"Subject: after them\r\nMessage-ID: <after@example.net>\r\n\r\nheaders-after\r\n",
    ];
    let rcpts = ["alice@example.org", "bob@example.org"];
    let outcomes = try_send_lmtp_each(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "x@example.net",
        &rcpts,
        &messages,
    )
    .unwrap_or_else(|e| panic!("{e}\ncoid log:\n{}", coid.log()));
    for outcome in &outcomes {
        let codes: Vec<u16> = outcome.data.iter().map(|r| r.0).collect();
        assert_eq!(codes, [250, 250], "{outcome:?}");
    }
    for user in ["alice", "bob"] {
        for marker in [
            "headerless-small",
            "headerless-spooled",
            "headerless-no-colon",
            "headers-after",
        ] {
            let stored = in_inbox(&dovecot, user, marker);
            assert!(!stored.has_flag("$Chat"), "{marker}: {:?}", stored.flags);
        }
    }
    assert!(!coid.log().contains("panicked"), "{}", coid.log());
}
