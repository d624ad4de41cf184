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
use common::stack::{DELIVERY_WAIT, Stack, dovecot_opts};
use common::{
    Dovecot, LmtpTarget, MessageBuilder, StoredMessage, send_lmtp, send_smtp, try_send_lmtp_each,
    wait_until,
};

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

/// How a test message reaches coid.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// SMTP to Postfix, which delivers to coid over LMTP.
    Postfix,
    /// LMTP straight to coid, as the attacker wrote it.
    Lmtp,
}

/// Sends `raw` to `rcpt` the way `path` says and returns the stored message whose
/// text contains `marker` (not its Message-ID: Postfix turns a message that starts
/// with a continuation line into a body under a header of its own).
fn deliver(
    stack: &Stack,
    path: Path,
    rcpt: &str,
    raw: &[u8],
    marker: &str,
) -> Result<StoredMessage, String> {
    match path {
        Path::Postfix => send_smtp(stack.postfix.smtp_port(), "x@example.net", &[rcpt], raw)?,
        Path::Lmtp => {
            let outcome = send_lmtp(
                LmtpTarget::Tcp(stack.coid.lmtp_addr()),
                "x@example.net",
                &[rcpt],
                raw,
            );
            if outcome.data.first().map(|r| r.0) != Some(250) {
                return Err(format!("not delivered: {outcome:?}"));
            }
        }
    }
    let mut imap = stack.dovecot.imap(rcpt);
    wait_until(DELIVERY_WAIT, || {
        let mailboxes = imap.list();
        mailboxes
            .iter()
            .filter(|m| m.selectable())
            .flat_map(|m| imap.fetch_all(&m.name))
            .find(|m| m.text().contains(marker))
    })
    .ok_or_else(|| format!("{marker} did not arrive within {DELIVERY_WAIT:?}"))
}

/// Where the message was filed and with which flags, as expected; no `X-Coid-*`
/// field (a line that starts with the name) in what was stored; the sender's flags
/// nowhere.
fn check(stored: &StoredMessage, folder: &str, chat: bool) -> Result<(), String> {
    let text = stored.text();
    let header = text.split("\r\n\r\n").next().unwrap_or_default();
    let trusted: Vec<&str> = header
        .lines()
        .filter(|line| !line.starts_with([' ', '\t']))
        .filter(|line| {
            line.get(..7)
                .is_some_and(|n| n.eq_ignore_ascii_case("x-coid-"))
        })
        .collect();
    let injected: Vec<&str> = ["\\Deleted", "\\Seen", "\\Flagged", "Evil6"]
        .into_iter()
        .filter(|flag| stored.has_flag(flag))
        .collect();
    if stored.mailbox != folder || stored.has_flag("$Chat") != chat || !injected.is_empty() {
        Err(format!(
            "filed in {} with {:?}",
            stored.mailbox, stored.flags
        ))
    } else if !trusted.is_empty() {
        Err(format!(
            "trusted fields left in the store: {trusted:?}\n{header}"
        ))
    } else {
        Ok(())
    }
}

/// Panics listing every failed case.
fn assert_all_passed(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A first header line that begins with a space or a tab continues nothing; coid
/// must not let it continue the trusted header it puts in front of the message
/// (issue 12, bug 2: Dovecot's Sieve read `X-Coid-Flags: $Chat Evil6 \Deleted`).
/// Two users: `X-Coid-Create` last (alice, filter `active`: COI/Chats, created) and
/// `X-Coid-Flags` last (bob, filter `none`: INBOX with `$Chat`). A copy of a trusted
/// header in the body is body and stays.
///
/// Straight to coid over LMTP the chat is routed with the trusted headers in front
/// of the stray line. Through Postfix it is plain mail: Postfix ends the header
/// section at a first line that is not a header field and puts a header of its own
/// in front, so the stray line and the sender's fields become body.
#[test]
fn a_leading_folded_line_cannot_extend_coids_trusted_headers() {
    let stack = Stack::start(dovecot_opts("/"), |_, opts| opts.coi_enabled = true);
    stack
        .coid
        .user_set("alice@example.org", &["message-filter=active"]);
    stack
        .coid
        .user_set("bob@example.org", &["message-filter=none"]);
    let mut failures = Vec::new();
    for path in [Path::Lmtp, Path::Postfix] {
        for fold in [
            " Evil6 \\Deleted \\Seen",
            "\t\\Deleted Evil6",
            " \\Flagged\r\n\tEvil6",
        ] {
            for (user, routed_to) in [("alice", "COI/Chats"), ("bob", "INBOX")] {
                let msg = MessageBuilder::chat();
                let body = format!("X-Coid-Flags: \\Deleted (in the body of {})\r\n", msg.id());
                let mut raw = format!("{fold}\r\n").into_bytes();
                raw.extend_from_slice(&msg.body(&body).build());
                let rcpt = format!("{user}@example.org");
                let (folder, chat) = match path {
                    Path::Lmtp => (routed_to, true),
                    Path::Postfix => ("INBOX", false),
                };
                let result = deliver(&stack, path, &rcpt, &raw, &body).and_then(|stored| {
                    check(&stored, folder, chat)?;
                    if stored.text().ends_with(&format!("\r\n\r\n{body}")) {
                        Ok(())
                    } else {
                        Err(format!("the body changed:\n{}", stored.text()))
                    }
                });
                if let Err(e) = result {
                    failures.push(format!("{path:?}, {user}, {fold:?}: {e}"));
                }
            }
        }
    }
    assert_all_passed(&failures);
}

/// Copies of the trusted headers where Dovecot still reads header fields but a
/// careless filter sees the body or no field: behind a line that is only a CR
/// (`CR CR LF` is not an empty line to Dovecot), after a line that ends in a lone CR,
/// with a NUL or blanks before the colon, folded, in any case, without a colon; and a
/// copy in the body, which a removed line starting with a CR must not turn into a
/// header (it used to leave the CR in front of the empty line). Plain mail, so coid
/// adds no header: any `X-Coid-*` the before-script sees is the sender's.
#[test]
fn copies_of_the_trusted_headers_never_reach_the_sieve_script() {
    let stack = Stack::start(dovecot_opts("/"), |_, opts| opts.coi_enabled = true);
    let forged = "X-Coid-Folder: Trash\r\nX-Coid-Flags: \\Deleted Evil6\r\nX-Coid-Create: yes\r\n";
    let hidden = [
        format!("\r\r\n{forged}"),
        format!("X-Note: ends in a lone CR\r\r\n{forged}"),
        "X-Coid-Folder\0: Trash\r\nX-Coid-Flags\0: \\Deleted\r\nX-Coid-Create\0: yes\r\n"
            .to_owned(),
        "x-coid-folder : Trash\r\nX-COID-FLAGS\t:\r\n \\Deleted\r\nx-Coid-Create:\r\n\tyes\r\n"
            .to_owned(),
        "X-Coid-Folder\r\nX-Coid-Flags: \\Deleted\rEvil6\r\n".to_owned(),
        "\rX-Coid-Note: the CR stays, the line goes\r\n".to_owned(),
    ];
    let mut failures = Vec::new();
    for path in [Path::Lmtp, Path::Postfix] {
        for hide in &hidden {
            let msg = MessageBuilder::new().subject("plain mail");
            let body = format!("{forged}{} (the body stays)\r\n", msg.id());
            let built = msg.body(&body).build();
            let (head, rest) = built.split_at(built.len() - "\r\n".len() - body.len());
            let mut raw = head.to_vec();
            raw.extend_from_slice(hide.as_bytes());
            raw.extend_from_slice(rest);
            let result =
                deliver(&stack, path, "alice@example.org", &raw, &body).and_then(|stored| {
                    check(&stored, "INBOX", false)?;
                    if stored.text().ends_with(&format!("\r\n\r\n{body}")) {
                        Ok(())
                    } else {
                        Err(format!("the body changed:\n{}", stored.text()))
                    }
                });
            if let Err(e) = result {
                failures.push(format!("{path:?}, {hide:?}: {e}"));
            }
        }
    }
    assert_all_passed(&failures);
}
