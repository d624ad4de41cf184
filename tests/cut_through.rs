//! Cut-through delivery (issue 10): once a message's header section is in, coid opens
//! the store transaction and streams the body to Dovecot as it arrives. These tests
//! hold the rules for a transaction that cannot end cleanly, on the real path (coid,
//! the fault hop, real Dovecot):
//! * the client goes away or idles out in the middle of DATA: the store connection is
//!   dropped without the end mark, Dovecot stores nothing;
//! * the message passes `max_message_size` in the middle: 552 as always, the store
//!   connection dropped, nothing stored;
//! * the store dies in the middle: coid reads the client's DATA to its end and answers
//!   4xx for every recipient, and the session goes on;
//! * the transaction deadline passes while the client is still sending: the store
//!   connection is dropped at the deadline, the recipient gets 4xx at the end of DATA.
//!
//! "Nothing stored" is shown by an event, never a sleep: the hop saw coid close the
//! store connection, never saw an end of data on it, and a second message delivered
//! after that is the only one in the mailbox once it has arrived.

mod common;

use std::time::Duration;

use common::coid::{Coid, CoidOpts};
use common::fault::{Fault, FaultProxy};
use common::raw_lmtp::Client;
use common::smtp::data_payload;
use common::stack::dovecot_opts;
use common::{Dovecot, LmtpTarget, MessageBuilder, send_lmtp, try_send_lmtp_each};

const WAIT: Duration = Duration::from_secs(30);

/// Body bytes well past one write to the store (64 KiB), so the store has had some.
const BODY: usize = 300 * 1024;

/// Dovecot, the hop in front of it (`faults` for its first connections), coid sending
/// through the hop with `opts` changed by `change`.
fn setup(faults: Vec<Fault>, change: impl FnOnce(&mut CoidOpts)) -> (Dovecot, FaultProxy, Coid) {
    let dovecot = Dovecot::start(dovecot_opts("/"));
    let proxy = FaultProxy::start(dovecot.lmtp_tcp(), faults);
    let mut opts = CoidOpts::dovecot(&proxy.addr());
    change(&mut opts);
    let coid = Coid::start(opts);
    (dovecot, proxy, coid)
}

/// A message of about `size` bytes (a long text body).
fn big_message(subject: &str, size: usize) -> MessageBuilder {
    let line = "cut-through body line 0123456789 abcdefghijklmnopqrstuvwxyz\n";
    MessageBuilder::new()
        .subject(subject)
        .body(&line.repeat(size / line.len() + 1))
}

/// The first `len` bytes of `message`'s DATA payload: its header section and part of
/// its body, never the end of data.
fn part_of(message: &[u8], len: usize) -> Vec<u8> {
    let payload = data_payload(message);
    payload
        .get(..len.min(payload.len() - 5))
        .unwrap_or_default()
        .to_vec()
}

/// After an aborted transaction: coid closed its one store connection without ever
/// sending an end of data, and a message delivered afterwards (on a new connection: the
/// dropped one was never pooled) is the only one in alice's mailbox once it arrived.
fn nothing_stored(dovecot: &Dovecot, proxy: &FaultProxy, coid: &Coid, aborted_id: &str) {
    assert!(
        proxy.wait_closed_by_coid(1, WAIT),
        "coid never dropped the store connection of the aborted transaction"
    );
    assert_eq!(
        proxy.connections(),
        1,
        "the aborted transaction had no store connection"
    );
    assert_eq!(
        proxy.data_ends_read(),
        0,
        "coid sent the store an end of data"
    );
    let next = MessageBuilder::new().subject("after the abort");
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        &["alice@example.org"],
        &next.build(),
    );
    assert_eq!(outcome.data.first().map(|r| r.0), Some(250), "{outcome:?}");
    dovecot.wait_for_message("alice", &next.id(), WAIT);
    assert_eq!(
        dovecot.count_message("alice", aborted_id),
        0,
        "the aborted message was stored"
    );
    let inbox = dovecot.imap("alice").fetch_all("INBOX");
    assert_eq!(inbox.len(), 1, "alice's INBOX: {inbox:?}");
    assert_eq!(
        proxy.connections(),
        2,
        "the dropped store connection was pooled"
    );
}

#[test]
fn a_client_gone_mid_data_leaves_nothing_in_the_store() {
    let (dovecot, proxy, coid) = setup(Vec::new(), |_| {});
    let msg = big_message("the client goes away", BODY);
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    client.send(&part_of(&msg.build(), BODY / 2));
    drop(client);
    nothing_stored(&dovecot, &proxy, &coid, &msg.id());
}

#[test]
fn a_client_idle_mid_data_leaves_nothing_in_the_store() {
    let (dovecot, proxy, coid) = setup(Vec::new(), |opts| {
        opts.lmtp_extra = "idle_timeout_secs = 1\n".into();
    });
    let msg = big_message("the client falls silent", BODY);
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    client.send(&part_of(&msg.build(), BODY / 2));
    assert_eq!(client.reply(), 421, "coid did not end the idle session");
    nothing_stored(&dovecot, &proxy, &coid, &msg.id());
}

#[test]
fn a_message_growing_too_big_mid_stream_leaves_nothing_in_the_store() {
    let (dovecot, proxy, coid) = setup(Vec::new(), |opts| {
        opts.lmtp_extra = format!("max_message_size = {}\n", BODY / 2);
    });
    let msg = big_message("too big", BODY);
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    client.send(&data_payload(&msg.build()));
    let line = client.line();
    assert!(line.starts_with("552 5.3.4"), "{line:?}");
    assert_eq!(client.command("QUIT"), 221);
    nothing_stored(&dovecot, &proxy, &coid, &msg.id());
}

/// The hop cuts the store connection a few bytes into the body. coid still reads the
/// client's DATA to its end and answers 451 4.x for both recipients (none had the
/// store's 250); the next transaction on the same session is delivered.
#[test]
fn a_store_dying_mid_stream_defers_every_recipient_and_the_session_goes_on() {
    let (dovecot, proxy, coid) = setup(vec![Fault::DieMidData], |opts| {
        opts.reply_timeout_secs = 5;
    });
    let first = big_message("the store dies", BODY);
    let second = MessageBuilder::new().subject("after the store died");
    let rcpts = ["alice@example.org", "bob@example.org"];
    let outcomes = try_send_lmtp_each(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "x@example.net",
        &rcpts,
        &[&first.build(), &second.build()],
    )
    .expect("the session stays in step");
    let replies = outcomes.first().map(|o| o.data.clone()).unwrap_or_default();
    assert_eq!(replies.len(), 2, "{outcomes:?}");
    for (code, text) in &replies {
        assert!(*code == 451 && text.starts_with("4."), "{outcomes:?}");
    }
    let codes: Vec<u16> = outcomes
        .get(1)
        .map(|o| o.data.iter().map(|r| r.0).collect())
        .unwrap_or_default();
    assert_eq!(codes, [250, 250], "{outcomes:?}");
    for user in ["alice", "bob"] {
        dovecot.wait_for_message(user, &second.id(), WAIT);
        assert_eq!(dovecot.count_message(user, &first.id()), 0, "{user}");
    }
    assert_eq!(proxy.connections(), 2);
}

/// `transaction_timeout_secs` covers the client's DATA too: coid drops the store
/// connection at the deadline while the client is silent (the hop sees it close, the
/// event this waits for), reads the rest of DATA when it comes and answers 451.
#[test]
fn the_transaction_deadline_covers_a_slow_client() {
    let (dovecot, proxy, coid) = setup(Vec::new(), |opts| {
        opts.transaction_timeout_secs = Some(1);
    });
    let msg = big_message("a slow client", BODY);
    let payload = data_payload(&msg.build());
    let half = BODY / 2;
    let mut client = Client::connect(coid.lmtp_addr());
    client.start_data();
    client.send(payload.get(..half).unwrap_or_default());
    assert!(
        proxy.wait_closed_by_coid(1, WAIT),
        "the store connection outlived the transaction deadline"
    );
    client.send(payload.get(half..).unwrap_or_default());
    let line = client.line();
    assert!(line.starts_with("451 4."), "{line:?}");
    assert_eq!(client.command("QUIT"), 221);
    assert_eq!(
        proxy.data_ends_read(),
        0,
        "coid sent the store an end of data"
    );
    let next = MessageBuilder::new().subject("after the deadline");
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        &["alice@example.org"],
        &next.build(),
    );
    assert_eq!(outcome.data.first().map(|r| r.0), Some(250), "{outcome:?}");
    dovecot.wait_for_message("alice", &next.id(), WAIT);
    assert_eq!(dovecot.count_message("alice", &msg.id()), 0);
}

/// A 1 MiB message with lines that need dot-stuffing streams through to Dovecot and is
/// stored byte for byte, and a sender's `X-Coid-*` field is still removed (the header
/// filter runs on the stream as it did on the spool).
#[test]
fn a_large_message_streams_through_byte_for_byte() {
    let (dovecot, proxy, coid) = setup(Vec::new(), |_| {});
    let mut body = String::new();
    let mut n = 0;
    while body.len() < 1024 * 1024 {
        body.push_str(&format!(
            ".line {n} starts with a dot\r\n..and two\r\nplain {n}\r\n"
        ));
        n += 1;
    }
    let msg = MessageBuilder::new()
        .subject("large, streamed")
        .header("X-Coid-Folder", "Hijacked")
        .body("");
    let mut raw = msg.build();
    raw.extend_from_slice(body.as_bytes());
    let outcome = send_lmtp(
        LmtpTarget::Tcp(coid.lmtp_addr()),
        "bob@example.net",
        &["alice@example.org"],
        &raw,
    );
    assert_eq!(outcome.data.first().map(|r| r.0), Some(250), "{outcome:?}");
    let stored = dovecot.wait_for_message("alice", &msg.id(), WAIT);
    assert_eq!(stored.mailbox, "INBOX");
    let text = String::from_utf8_lossy(&stored.raw);
    let (header, stored_body) = text.split_once("\r\n\r\n").expect("a header section");
    assert!(!header.contains("X-Coid-"), "{header}");
    assert_eq!(stored_body.len(), body.len(), "body length");
    assert!(stored_body == body, "the body was changed on its way");
    assert_eq!(proxy.connections(), 1);
}
