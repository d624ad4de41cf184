//! Session dialogues at the byte level: pipelining, per-recipient replies, limits and
//! the SMTP-smuggling vectors that must not end DATA.

use super::*;

fn limits() -> Limits {
    Limits {
        max_line: 512,
        max_message_size: 1000,
        max_recipients: 3,
    }
}

/// Drives a session like a connection would; delivery answers `reply` per recipient.
struct Driver {
    session: Session,
    messages: Vec<(Envelope, Vec<u8>)>,
    body: Vec<u8>,
    aborted: usize,
}

impl Driver {
    fn new() -> Self {
        Driver {
            session: Session::new("test.example", limits()),
            messages: Vec::new(),
            body: Vec::new(),
            aborted: 0,
        }
    }

    /// Feeds input in chunks of `n`; returns the reply lines written.
    fn feed(&mut self, input: &[u8], n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut pending: Vec<u8> = Vec::new();
        for chunk in input.chunks(n.max(1)) {
            pending.extend_from_slice(chunk);
            loop {
                let mut events = Vec::new();
                let used = self.session.ingest(&pending, &mut events);
                pending.drain(..used);
                let delivered = self.handle(events, &mut out);
                if !delivered || pending.is_empty() {
                    break;
                }
            }
        }
        out
    }

    fn handle(&mut self, events: Vec<Event>, out: &mut Vec<String>) -> bool {
        let mut delivered = false;
        for event in events {
            match event {
                Event::Reply(r) => out.push(r.to_string()),
                Event::Replies(rs) => {
                    out.extend(rs.iter().map(|r| format!("{} {}", r.code, r.text)))
                }
                Event::BeginData => self.body.clear(),
                Event::AbortData => self.aborted += 1,
                Event::EndOfData(envelope) => {
                    self.body.extend(self.session.take_body());
                    let replies = envelope.per_rcpt(|_, _| Reply::OK);
                    self.messages
                        .push((envelope, std::mem::take(&mut self.body)));
                    let mut more = Vec::new();
                    self.session.finish_data(replies, &mut more);
                    self.handle(more, out);
                    delivered = true;
                }
                Event::Close => out.push("CLOSE".into()),
            }
        }
        self.body.extend(self.session.take_body());
        delivered
    }
}

const TRANSACTION: &[u8] = b"LHLO client\r\nMAIL FROM:<a@x> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@y>\r\nRCPT TO:<c+tag@y>\r\nDATA\r\nSubject: t\r\n\r\n..dotted\r\nbody\r\n.\r\nQUIT\r\n";

#[test]
fn pipelined_transaction_in_any_fragmentation() {
    for n in [1, 2, 3, 7, 64, 4096] {
        let mut d = Driver::new();
        let out = d.feed(TRANSACTION, n);
        let codes: Vec<&str> = out.iter().map(|l| l.get(..3).unwrap_or(l)).collect();
        assert_eq!(
            codes,
            [
                "250", "250", "250", "250", "250", "250", "250", "250", "250", "354", "250", "250",
                "221", "CLO"
            ],
            "chunk {n}: {out:?}"
        );
        let (envelope, body) = d.messages.first().expect("one message");
        assert_eq!(envelope.mail_from, "a@x");
        assert!(envelope.body_8bit);
        assert_eq!(envelope.recipients.len(), 2);
        assert_eq!(body, b"Subject: t\r\n\r\n.dotted\r\nbody\r\n", "chunk {n}");
    }
}

#[test]
fn lhlo_advertises_extensions() {
    let out = Driver::new().feed(b"LHLO x\r\n", 100);
    for ext in [
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "SMTPUTF8",
        "SIZE 1000",
    ] {
        assert!(
            out.iter().any(|l| l.ends_with(ext)),
            "{ext} missing in {out:?}"
        );
    }
}

#[test]
fn smtp_smuggling_vectors_do_not_end_data() {
    for vector in [
        &b"\n.\n"[..],
        b"\r.\r\n",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r\n.\r",
    ] {
        let mut input =
            b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: s\r\n\r\nbefore"
                .to_vec();
        input.extend_from_slice(vector);
        input
            .extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nsmuggled\r\n.\r\n");
        let mut d = Driver::new();
        d.feed(&input, 5);
        assert_eq!(d.messages.len(), 1, "{vector:?}");
        let body = &d.messages.first().expect("message").1;
        assert!(
            memchr::memmem::find(body, b"smuggled").is_some(),
            "{vector:?}: {body:?}"
        );
    }
}

#[test]
fn ehlo_is_refused_and_order_is_enforced() {
    let out = Driver::new().feed(b"EHLO x\r\nMAIL FROM:<a@x>\r\nLHLO x\r\nRCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nDATA\r\n", 100);
    let codes: Vec<&str> = out.iter().map(|l| l.get(..9).unwrap_or(l)).collect();
    assert_eq!(codes.first(), Some(&"500 5.5.1"));
    assert_eq!(codes.get(1), Some(&"503 5.5.1"));
    assert!(
        out.iter().any(|l| l.starts_with("503 5.5.1 Send MAIL")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("503 5.5.1 Sender already")),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l.starts_with("503 5.5.1 No valid")),
        "{out:?}"
    );
}

#[test]
fn size_limits() {
    let out = Driver::new().feed(b"LHLO x\r\nMAIL FROM:<a@x> SIZE=5000\r\n", 100);
    assert!(
        out.last().is_some_and(|l| l.starts_with("552 5.3.4")),
        "{out:?}"
    );

    let mut input =
        b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 3000));
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let mut d = Driver::new();
    let out = d.feed(&input, 256);
    assert!(d.messages.is_empty());
    assert_eq!(d.aborted, 1);
    let tail: Vec<&str> = out
        .iter()
        .rev()
        .take(3)
        .map(|l| l.get(..9).unwrap_or(l))
        .collect();
    assert_eq!(tail, ["250 2.0.0", "552 5.3.4", "552 5.3.4"], "{out:?}");
}

#[test]
fn long_lines_and_recipient_limit() {
    let mut input = b"LHLO x\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'a', 600));
    input.extend_from_slice(b"\r\nMAIL FROM:<a@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\nRCPT TO:<3@y>\r\nRCPT TO:<4@y>\r\n");
    let out = Driver::new().feed(&input, 50);
    assert!(out.iter().any(|l| l.starts_with("500 5.5.2")), "{out:?}");
    assert!(
        out.last().is_some_and(|l| l.starts_with("452 4.5.3")),
        "{out:?}"
    );
}

/// Random bytes with LMTP commands strewn in (so transactions start, grow too big,
/// end and reset), fed in odd chunks: the session must not panic, every reply line it
/// writes must be a well-formed reply, and afterwards it must still be in step, so a
/// clean transaction gets exactly its own replies.
#[test]
fn garbage_never_panics() {
    const FRAGMENTS: [&[u8]; 5] = [
        b"\r\nMAIL FROM:<>\r\n",
        b"\r\nRCPT TO:<a@b>\r\n",
        b"\r\nDATA\r\n",
        b"\r\nRSET\r\n",
        b"\r\nLHLO x\r\n",
    ];
    let mut d = Driver::new();
    let mut seed: u32 = 7;
    let mut input = b"LHLO x\r\n".to_vec();
    for _ in 0..20_000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        input.push((seed >> 16) as u8);
        if seed.is_multiple_of(41) {
            let pick = (seed >> 8) as usize % FRAGMENTS.len();
            input.extend_from_slice(FRAGMENTS.get(pick).copied().unwrap_or_default());
        }
        // Rarer, so bodies run both under and over the 1000-byte limit.
        if seed.is_multiple_of(1_499) {
            input.extend_from_slice(b"\r\n.\r\n");
        }
    }
    let mut out = d.feed(&input, 33);
    for line in &out {
        assert!(is_reply_line(line), "not a reply line: {line:?}");
    }
    assert!(
        !d.messages.is_empty() && d.aborted > 0,
        "the garbage never completed or overflowed a message: {} delivered, {} aborted",
        d.messages.len(),
        d.aborted
    );
    // Whatever state the garbage left: end a body, a line, and reset.
    let clean = b"\r\n.\r\nRSET\r\nMAIL FROM:<s@x>\r\nRCPT TO:<r@y>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n";
    out = d.feed(clean, 7);
    let tail: Vec<&str> = out
        .iter()
        .rev()
        .take(7)
        .rev()
        .map(|l| l.get(..3).unwrap_or(l))
        .collect();
    let step = ["250", "250", "250", "354", "250", "221", "CLO"];
    assert_eq!(tail, step, "{out:?}");
    assert_eq!(out.last().map(String::as_str), Some("CLOSE"), "{out:?}");
    let last = d
        .messages
        .last()
        .map(|(e, b)| (e.mail_from.as_str(), b.as_slice()));
    assert_eq!(last, Some(("s@x", &b"hi\r\n"[..])));
}

/// `NNN text`: a code from 200 to 599, a space, printable text, no line break.
fn is_reply_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    let code_ok = bytes
        .get(..3)
        .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
        && matches!(bytes.first(), Some(b'2'..=b'5'));
    code_ok
        && bytes.get(3) == Some(&b' ')
        && !line
            .chars()
            .any(|c| c == '\r' || c == '\n' || c.is_control())
}

#[test]
fn null_sender_and_rset() {
    let out = Driver::new().feed(
        b"LHLO x\r\nMAIL FROM:<>\r\nRSET\r\nMAIL FROM:<a@x>\r\n",
        100,
    );
    let codes: Vec<&str> = out
        .iter()
        .rev()
        .take(3)
        .map(|l| l.get(..3).unwrap_or(l))
        .collect();
    assert_eq!(codes, ["250", "250", "250"], "{out:?}");
}

#[test]
fn a_draining_session_answers_quit_with_221_and_anything_else_with_421() {
    let mut d = Driver::new();
    d.feed(b"LHLO x\r\n", 100);
    d.session.drain();
    let out = d.feed(b"QUIT\r\n", 100);
    assert!(out.first().is_some_and(|l| l.starts_with("221")), "{out:?}");
    let mut d = Driver::new();
    d.feed(b"LHLO x\r\n", 100);
    d.session.drain();
    let out = d.feed(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n", 100);
    assert!(out.first().is_some_and(|l| l.starts_with("421")), "{out:?}");
    assert!(d.session.is_closed(), "{out:?}");
    assert_eq!(
        out.len(),
        2,
        "421 and the close, nothing for the RCPT: {out:?}"
    );
}

/// Found by fuzz/lmtp_session: the first line after DATA is a line start too, so its
/// stuffing dot goes (RFC 5321 §4.5.2) and a lone dot there ends an empty message.
#[test]
fn the_first_data_line_is_unstuffed_and_may_end_the_message() {
    let mut d = Driver::new();
    d.feed(
        b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n..first\r\nnext\r\n.\r\n",
        3,
    );
    assert_eq!(d.messages.len(), 1);
    assert_eq!(d.messages[0].1, b".first\r\nnext\r\n");
    let mut d = Driver::new();
    let out = d.feed(
        b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\nQUIT\r\n",
        100,
    );
    assert_eq!(d.messages.len(), 1, "{out:?}");
    assert!(d.messages[0].1.is_empty());
    assert!(out.iter().any(|l| l.starts_with("221")), "{out:?}");
}

/// Found by fuzz/lmtp_session: a message exactly at the size limit got 250 or 552
/// depending on where reads split the input (the receiver takes back a byte it gave,
/// and growth per read counted it twice).
#[test]
fn the_size_limit_does_not_depend_on_how_the_input_is_read() {
    let mut body = Vec::new();
    for filler in [b'x'; 9].into_iter().chain([b'y']) {
        body.extend(std::iter::repeat_n(filler, 98));
        body.extend_from_slice(b"\r\n");
    }
    assert_eq!(body.len(), 1000);
    let mut input = b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(&body);
    input.extend_from_slice(b".\r\n");
    let mut over = input.clone();
    over.insert(over.len() - 5, b'z');
    for chunk in [1, 2, 3, 5, 7, 64, usize::MAX] {
        let mut d = Driver::new();
        let out = d.feed(&input, chunk);
        assert_eq!(d.messages.len(), 1, "chunk {chunk}: {out:?}");
        assert_eq!(d.messages[0].1, body, "chunk {chunk}");
        let mut d = Driver::new();
        let out = d.feed(&over, chunk);
        assert!(d.messages.is_empty(), "1001 bytes, chunk {chunk}: {out:?}");
        assert!(
            out.iter().any(|l| l.starts_with("552")),
            "chunk {chunk}: {out:?}"
        );
    }
}

/// What coid's user mapping cannot turn into a user is refused at RCPT time (RFC
/// 5321 §4.1.1.3, `501 5.1.3`), before any body is sent: an address with an `@` and
/// no domain (`[users] username = address` would name another user). Unknown users
/// are not refused here: that is Dovecot's verdict, after DATA.
#[test]
fn unmappable_recipients_are_refused_at_rcpt_time() {
    for rcpt in ["<alice@>", "<@example.org>", "<a b@x>"] {
        let line = format!("LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:{rcpt}\r\n");
        let out = Driver::new().feed(line.as_bytes(), 100);
        assert_eq!(
            out.last().map(String::as_str),
            Some("501 5.1.3 Bad recipient address syntax"),
            "{rcpt}: {out:?}"
        );
    }
    let out = Driver::new().feed(b"LHLO x\r\nMAIL FROM:<s@x>\r\nRCPT TO:<nobody@x>\r\n", 100);
    assert_eq!(
        out.last().map(String::as_str),
        Some("250 2.1.5 Recipient OK")
    );
}
