//! The LMTP server session (`coid::lmtp::Session` and its line framing,
//! `coid::lmtp::line`), fed client bytes the way `lmtp::connection` feeds it: pending
//! bytes in, events out, the body taken after every step, one reply per recipient
//! after DATA. The input is what Postfix (or anyone who reaches the socket) sends.
//!
//! Properties, beyond "no panic":
//! - the transcript (reply bytes, messages, aborted bodies) is the same whether the
//!   input arrives in one read or in small pieces (pipelining, split lines, DATA
//!   split anywhere, a CR held back at the end of a piece);
//! - every reply line coid writes ends in CRLF and is one that coid's own LMTP client
//!   parser (`delivery::lmtp_client::parse_reply_line`) reads;
//! - a message has 1..=max_recipients recipients and at most max_message_size bytes;
//! - what coid forwards can't be cut short or extended by the body: a received body, dot-stuffed by
//!   `delivery::stream::DotStuffer` (what coid sends to Dovecot), read again by a
//!   fresh session is exactly the body with bare LFs made CRLF, and DATA ends at
//!   coid's terminator, not before (SMTP smuggling).
//!
//! Input: raw client bytes. The first byte picks the limits: with its 0x20 bit clear
//! (`LHLO`, upper case) the small ones (bodies over 2000 bytes are refused), else the
//! large ones (`lhlo`); and the size of the pieces (1 to 8 bytes).

#![no_main]

use coid::delivery::lmtp_client::parse_reply_line;
use coid::delivery::stream::{DotStuffer, Transform};
use coid::lmtp::{Envelope, Event, Limits, Reply, Session};
use libfuzzer_sys::fuzz_target;

fn limits(small: bool) -> Limits {
    Limits {
        max_line: 512,
        max_message_size: if small { 2000 } else { 1 << 20 },
        max_recipients: 3,
    }
}

/// Everything a session said and delivered.
#[derive(Debug, Default, PartialEq, Eq)]
struct Transcript {
    /// The reply bytes, as the connection writes them.
    out: Vec<u8>,
    /// Delivered messages: envelope and body.
    messages: Vec<(Envelope, Vec<u8>)>,
    /// Bodies dropped as too big.
    aborted: usize,
    closed: bool,
}

/// Plays `lmtp::connection`'s loop over `input`, read `piece` bytes at a time.
fn drive(input: &[u8], piece: usize, limits: Limits) -> Transcript {
    let mut session = Session::new("fuzz.example", limits);
    let mut t = Transcript::default();
    Reply::READY.write_to(&mut t.out);
    let mut spool: Option<Vec<u8>> = None;
    let mut pending: Vec<u8> = Vec::new();
    let mut reads = input.chunks(piece.max(1));
    loop {
        if !pending.is_empty() && !session.awaiting_delivery() {
            let mut events = Vec::new();
            let used = session.ingest(&pending, &mut events);
            pending.drain(..used);
            handle(&mut session, events, &mut spool, &mut t);
        }
        if session.is_closed() {
            t.closed = true;
            return t;
        }
        if !pending.is_empty() {
            continue;
        }
        match reads.next() {
            Some(read) => pending.extend_from_slice(read),
            None => return t,
        }
    }
}

fn handle(
    session: &mut Session,
    events: Vec<Event>,
    spool: &mut Option<Vec<u8>>,
    t: &mut Transcript,
) {
    for event in events {
        match event {
            Event::Reply(reply) => reply.write_to(&mut t.out),
            Event::Replies(lines) => {
                let last = lines.len().saturating_sub(1);
                for (i, line) in lines.iter().enumerate() {
                    let sep = if i == last { ' ' } else { '-' };
                    t.out.extend_from_slice(
                        format!("{}{sep}{}\r\n", line.code, line.text).as_bytes(),
                    );
                }
            }
            Event::BeginData => *spool = Some(Vec::new()),
            Event::AbortData => {
                *spool = None;
                t.aborted += 1;
            }
            Event::EndOfData(envelope) => {
                let mut body = spool.take().unwrap_or_default();
                body.extend(session.take_body());
                // Delivery answers per recipient; a `temp` address gets a 4xx.
                let replies = envelope.per_rcpt(|_, r| {
                    if r.address.contains("temp") {
                        Reply::TEMP_FAILURE
                    } else {
                        Reply::OK
                    }
                });
                t.messages.push((envelope, body));
                let mut more = Vec::new();
                session.finish_data(replies, &mut more);
                for event in more {
                    if let Event::Reply(reply) = event {
                        reply.write_to(&mut t.out);
                    }
                }
            }
            Event::Close => {}
        }
    }
    let body = session.take_body();
    if let Some(spool) = spool.as_mut() {
        spool.extend_from_slice(&body);
    }
}

/// What an RFC 5321 reader gets back from `DotStuffer`'s output: every LF not after a
/// CR becomes CRLF, and a body not ending in LF gets a line end.
fn normalised(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut prev = None;
    for &b in body {
        if b == b'\n' && prev != Some(b'\r') {
            out.push(b'\r');
        }
        out.push(b);
        prev = Some(b);
    }
    match prev {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

fn check_reply_lines(out: &[u8]) {
    assert!(out.ends_with(b"\r\n"), "reply bytes end mid-line: {out:?}");
    let text = std::str::from_utf8(out).expect("replies are UTF-8");
    for line in text.split_terminator("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "bare CR or LF in reply {line:?}"
        );
        parse_reply_line(line).unwrap_or_else(|e| panic!("coid's client can't read {line:?}: {e}"));
    }
}

/// Dot-stuffs `body` as coid does towards Dovecot and reads it back with a fresh session.
fn check_forwarded(body: &[u8]) {
    let mut stuffer = DotStuffer::default();
    let mut sent = b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    stuffer.push(body, &mut sent);
    stuffer.finish(&mut sent);
    sent.extend_from_slice(b"QUIT\r\n");
    let again = drive(&sent, sent.len(), limits(false));
    assert_eq!(
        again.messages.len(),
        1,
        "forwarded body split the transaction"
    );
    let (_, read) = &again.messages[0];
    assert_eq!(
        read,
        &normalised(body),
        "forwarded body reads back differently"
    );
    assert!(again.closed, "DATA did not end at coid's terminator");
}

fuzz_target!(|data: &[u8]| {
    let first = data.first().copied().unwrap_or(0);
    let small = first & 0x20 == 0;
    let piece = usize::from(first % 8) + 1;
    let whole = drive(data, data.len(), limits(small));
    let pieces = drive(data, piece, limits(small));
    assert_eq!(
        whole, pieces,
        "transcript depends on how the input was read"
    );
    check_reply_lines(&whole.out);
    let max = limits(small);
    for (envelope, body) in &whole.messages {
        assert!((1..=max.max_recipients).contains(&envelope.recipients.len()));
        assert!(body.len() as u64 <= max.max_message_size);
        check_forwarded(body);
    }
});
