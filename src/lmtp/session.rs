//! The LMTP server session as an explicit state machine (RFC 2033 on top of RFC 5321),
//! sans-IO: bytes in, [`Event`]s out. Only `connection.rs` touches the socket.
//!
//! What it speaks: LHLO, MAIL (SIZE, BODY=7BIT/8BITMIME, SMTPUTF8), RCPT, DATA, RSET,
//! NOOP, QUIT, with PIPELINING and ENHANCEDSTATUSCODES. EHLO/HELO are refused (LMTP
//! only), BDAT/AUTH/STARTTLS/VRFY are not offered. DATA ends only on CRLF.CRLF
//! (smtp-proto's `DataReceiver` also undoes dot-stuffing); a bare LF or CR never ends
//! it. After DATA the session waits until the caller hands it one reply per accepted
//! recipient ([`Session::finish_data`] takes a [`PerRcpt`]).

use std::borrow::Cow;

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver};
use smtp_proto::{Error as ProtoError, MailFrom, RcptTo, Request};

use super::envelope::{Envelope, PerRcpt, Recipient};
use super::line::{Line, LineReceiver};
use super::reply::Reply;

/// Limits a session enforces; each has a config key.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest command line accepted, CRLF included.
    pub max_line: usize,
    /// Largest message body (after dot-unstuffing) accepted.
    pub max_message_size: u64,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
}

/// What the connection must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Write one reply.
    Reply(Reply),
    /// Write a multi-line reply (LHLO).
    Replies(Vec<Reply>),
    /// DATA was accepted: body bytes follow, see [`Session::take_body`].
    BeginData,
    /// The body was too big or otherwise dropped: discard what was spooled.
    AbortData,
    /// The body is complete: deliver it, then call [`Session::finish_data`].
    EndOfData(Envelope),
    /// Close the connection after writing what is pending.
    Close,
}

enum State {
    Command,
    /// `taken`: body bytes already handed out by [`Session::take_body`].
    Data {
        receiver: DataReceiver,
        taken: u64,
    },
    DataTooBig {
        receiver: DummyDataReceiver,
    },
    AwaitDelivery,
    Closed,
}

/// One LMTP session.
pub struct Session {
    hostname: String,
    limits: Limits,
    state: State,
    lines: LineReceiver,
    greeted: bool,
    envelope: Option<Envelope>,
    /// Un-stuffed body bytes not yet taken by the connection.
    body: Vec<u8>,
    /// The service is stopping: QUIT still gets 221, anything else 421 and the end.
    draining: bool,
}

impl Session {
    /// A new session; the caller writes [`Reply::READY`] first.
    pub fn new(hostname: impl Into<String>, limits: Limits) -> Self {
        let lines = LineReceiver::new(limits.max_line);
        Self {
            hostname: hostname.into(),
            limits,
            state: State::Command,
            lines,
            greeted: false,
            envelope: None,
            body: Vec::new(),
            draining: false,
        }
    }

    /// The service is stopping: from now on QUIT gets its 221 (RFC 5321 §4.1.1.10) and
    /// any other command 421 and the end of the session.
    pub fn drain(&mut self) {
        self.draining = true;
    }

    /// True once [`Session::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// True while a message body is being received or delivered: shutdown lets such a
    /// session finish instead of cutting it off.
    pub fn in_transaction(&self) -> bool {
        matches!(
            self.state,
            State::Data { .. } | State::DataTooBig { .. } | State::AwaitDelivery
        ) || self.lines.is_partial()
    }

    /// True once the session is waiting for [`Session::finish_data`].
    pub fn awaiting_delivery(&self) -> bool {
        matches!(self.state, State::AwaitDelivery)
    }

    /// The transaction's envelope, from MAIL until its DATA ends: cut-through delivery
    /// decides the message before [`Event::EndOfData`] hands the envelope out.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// True after QUIT or a fatal condition.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Feeds client bytes. Returns how many were consumed: processing stops early once
    /// a message is complete (the rest waits until [`Session::finish_data`]) or the
    /// session closed.
    pub fn ingest(&mut self, input: &[u8], events: &mut Vec<Event>) -> usize {
        let mut pos = 0;
        while pos < input.len() {
            let rest = input.get(pos..).unwrap_or_default();
            pos += match &mut self.state {
                State::Command => self.ingest_command(rest, events),
                State::Data { .. } => self.ingest_data(rest, events),
                State::DataTooBig { .. } => self.ingest_discard(rest, events),
                State::AwaitDelivery | State::Closed => break,
            };
        }
        pos
    }

    /// Hands out the body bytes received so far. A trailing CR is held back: it may
    /// still turn out to start the CRLF.CRLF terminator.
    pub fn take_body(&mut self) -> Vec<u8> {
        let keep_cr = matches!(self.state, State::Data { .. }) && self.body.last() == Some(&b'\r');
        let out = if keep_cr {
            let mut out = std::mem::take(&mut self.body);
            out.pop();
            self.body.push(b'\r');
            out
        } else {
            std::mem::take(&mut self.body)
        };
        if let State::Data { taken, .. } = &mut self.state {
            *taken = taken.saturating_add(out.len() as u64);
        }
        out
    }

    /// Ends the transaction after delivery: emits the per-recipient replies, one per
    /// recipient of the envelope [`Event::EndOfData`] handed out ([`PerRcpt`] cannot
    /// hold more or fewer).
    pub fn finish_data(&mut self, replies: PerRcpt<Reply>, events: &mut Vec<Event>) {
        if !matches!(self.state, State::AwaitDelivery) {
            return;
        }
        events.extend(replies.into_iter().map(Event::Reply));
        self.state = State::Command;
    }

    /// Lines the closing reply for shutdown or idle timeout.
    pub fn close_with(&mut self, reply: Reply, events: &mut Vec<Event>) {
        events.push(Event::Reply(reply));
        events.push(Event::Close);
        self.state = State::Closed;
    }

    fn ingest_command(&mut self, input: &[u8], events: &mut Vec<Event>) -> usize {
        let (used, line) = self.lines.ingest(input);
        match line {
            None => {}
            Some(Line::TooLong) => events.push(Event::Reply(Reply::LINE_TOO_LONG)),
            Some(Line::Complete(line)) => self.handle_line(&line, events),
        }
        used
    }

    fn ingest_data(&mut self, input: &[u8], events: &mut Vec<Event>) -> usize {
        let State::Data { receiver, taken } = &mut self.state else {
            return 0;
        };
        let mut iter = input.iter();
        let done = receiver.ingest(&mut iter, &mut self.body);
        let used = input.len() - iter.as_slice().len();
        // What was handed out plus what is held, exactly once the message is complete.
        // Before that the receiver may hold bytes of a terminator it is not yet sure
        // of (`.` and CR after a line end), which it takes back at the end: allowed
        // for, so the answer cannot depend on where reads split the input.
        let slack = if done { 0 } else { TERMINATOR_SLACK };
        let held = taken.saturating_add(self.body.len() as u64);
        if held > self.limits.max_message_size.saturating_add(slack) {
            let dummy = DummyDataReceiver::new_data(receiver);
            self.body.clear();
            events.push(Event::AbortData);
            if done {
                self.reply_too_big(events);
            } else {
                self.state = State::DataTooBig { receiver: dummy };
            }
        } else if done {
            let envelope = self.envelope.take().unwrap_or_default();
            self.state = State::AwaitDelivery;
            events.push(Event::EndOfData(envelope));
        }
        used
    }

    fn ingest_discard(&mut self, input: &[u8], events: &mut Vec<Event>) -> usize {
        let State::DataTooBig { receiver } = &mut self.state else {
            return 0;
        };
        let mut iter = input.iter();
        let done = receiver.ingest(&mut iter);
        let used = input.len() - iter.as_slice().len();
        if done {
            self.reply_too_big(events);
        }
        used
    }

    fn reply_too_big(&mut self, events: &mut Vec<Event>) {
        let n = self.envelope.take().map_or(0, |e| e.recipients.len());
        events.extend((0..n).map(|_| Event::Reply(Reply::MESSAGE_TOO_BIG)));
        self.state = State::Command;
    }

    fn handle_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        let reply = match Request::parse(&mut line.iter()) {
            Ok(request) => self.handle_request(request, events),
            Err(err) => Some(parse_error_reply(&err)),
        };
        if let Some(reply) = reply {
            events.push(Event::Reply(reply));
        }
    }

    fn handle_request(
        &mut self,
        request: Request<Cow<'_, str>>,
        events: &mut Vec<Event>,
    ) -> Option<Reply> {
        if self.draining && !matches!(request, Request::Quit) {
            self.close_with(Reply::SHUTTING_DOWN, events);
            return None;
        }
        match request {
            Request::Lhlo { .. } => {
                events.push(Event::Replies(self.handle_lhlo()));
                None
            }
            Request::Ehlo { .. } | Request::Helo { .. } => Some(Reply::USE_LHLO),
            Request::Mail { from } => Some(self.handle_mail(from)),
            Request::Rcpt { to } => Some(self.handle_rcpt(to)),
            Request::Data => self.handle_data(events),
            Request::Rset => {
                self.envelope = None;
                Some(Reply::RESET)
            }
            Request::Noop { .. } => Some(Reply::OK),
            Request::Quit => {
                self.close_with(Reply::BYE, events);
                None
            }
            _ => Some(Reply::NOT_IMPLEMENTED),
        }
    }

    fn handle_lhlo(&mut self) -> Vec<Reply> {
        self.greeted = true;
        self.envelope = None;
        let size = format!("SIZE {}", self.limits.max_message_size);
        let mut lines = vec![Reply::dynamic(250, [0, 0, 0], &self.hostname)];
        for ext in [
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "SMTPUTF8",
            &size,
        ] {
            lines.push(Reply::dynamic(250, [0, 0, 0], ext));
        }
        lines
    }

    fn handle_mail(&mut self, from: MailFrom<Cow<'_, str>>) -> Reply {
        if !self.greeted {
            return Reply::NEED_LHLO;
        }
        if self.envelope.is_some() {
            return Reply::NESTED_MAIL;
        }
        let allowed =
            smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
        if from.flags & !allowed != 0 || from.env_id.is_some() || from.auth.is_some() {
            return Reply::UNSUPPORTED_PARAMETER;
        }
        if from.size as u64 > self.limits.max_message_size {
            return Reply::MESSAGE_TOO_BIG;
        }
        self.envelope = Some(Envelope {
            mail_from: from.address.into_owned(),
            body_8bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8: from.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
            declared_size: (from.size > 0).then_some(from.size as u64),
            recipients: Vec::new(),
        });
        Reply::SENDER_OK
    }

    fn handle_rcpt(&mut self, to: RcptTo<Cow<'_, str>>) -> Reply {
        let Some(envelope) = self.envelope.as_mut() else {
            return Reply::NEED_MAIL;
        };
        if to.flags != 0 {
            return Reply::UNSUPPORTED_PARAMETER;
        }
        if to.address.is_empty() || !is_mappable(&to.address) {
            return Reply::BAD_RECIPIENT;
        }
        if envelope.recipients.len() >= self.limits.max_recipients {
            return Reply::TOO_MANY_RECIPIENTS;
        }
        envelope.recipients.push(Recipient {
            address: to.address.into_owned(),
            orcpt: to.orcpt.map(Cow::into_owned),
        });
        Reply::RECIPIENT_OK
    }

    fn handle_data(&mut self, events: &mut Vec<Event>) -> Option<Reply> {
        match &self.envelope {
            None => Some(Reply::NEED_MAIL),
            Some(e) if e.recipients.is_empty() => Some(Reply::NEED_RCPT),
            Some(_) => {
                self.body.clear();
                self.state = State::Data {
                    receiver: data_receiver(),
                    taken: 0,
                };
                events.push(Event::Reply(Reply::START_DATA));
                events.push(Event::BeginData);
                None
            }
        }
    }
}

/// Whether `crate::users` can turn the address into a user: an `@` must be followed
/// by a domain (`alice@` would map to the user `alice`, another user when usernames
/// are whole addresses). smtp-proto already refuses what RFC 5321 does not allow
/// (an empty local part, spaces, two `@`). Whether the user exists is the store's
/// verdict after DATA: coid never asks Dovecot at RCPT time.
fn is_mappable(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_none_or(|(local, domain)| !local.is_empty() && !domain.is_empty())
}

/// Bytes of a possible end-of-data terminator (`.` CR after a line end) the receiver
/// may hold in the body before it knows.
const TERMINATOR_SLACK: u64 = 2;

/// A DATA receiver that knows it stands at the start of a line, as it does right
/// after `DATA CRLF`: smtp-proto's starts as if inside a line, so a first line that
/// begins with a dot kept its stuffing dot (RFC 5321 §4.5.2) and an empty message
/// (`.` alone on the first line) never ended. Fed a CRLF whose output is dropped.
fn data_receiver() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    let mut discarded = Vec::new();
    receiver.ingest(&mut b"\r\n".iter(), &mut discarded);
    receiver
}

fn parse_error_reply(err: &ProtoError) -> Reply {
    match err {
        ProtoError::UnknownCommand => Reply::UNKNOWN_COMMAND,
        ProtoError::InvalidSenderAddress => Reply::BAD_SENDER,
        ProtoError::InvalidRecipientAddress => Reply::BAD_RECIPIENT,
        ProtoError::UnsupportedParameter { .. } | ProtoError::InvalidParameter { .. } => {
            Reply::UNSUPPORTED_PARAMETER
        }
        ProtoError::ResponseTooLong => Reply::LINE_TOO_LONG,
        _ => Reply::SYNTAX_ERROR,
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
