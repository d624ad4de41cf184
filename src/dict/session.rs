//! One dict proxy connection as an explicit state machine, sans-IO: bytes in,
//! [`Event`]s out. Only `connection.rs` touches the socket and the store.
//!
//! `Handshake` (the first line must be a valid `H`) → `Ready(version)` → `Closed`.
//! The handshake's major picks the [`Version`] (3: Dovecot 2.3, 4: Dovecot 2.4; see
//! `super::protocol`), which the session keeps and reads every later line by: a 2.4
//! `B` carries an expiry, and `D` exists in 3 only.
//! Transactions are kept by id (`super::transactions`), at most `max_transactions` at
//! once, each with at most
//! `max_changes` changes, and all uncommitted changes of the connection together
//! within `max_pending_bytes`. Nothing reaches the store before `C`, and then all of a
//! transaction goes in one [`Event::Commit`], which the store applies atomically.
//!
//! Bad input never panics and never writes part of anything. The protocol answers
//! `L`, `I` and `C`/`D` only, so:
//! - a bad `L`, `I`, `C` or `D` (also one cut off as too long) gets its `F` reply;
//! - a bad `B`, `S`, `U`, `A`, `T` or `R` that names an open transaction marks it
//!   failed: its changes are dropped and its commit is answered `F` with the reason;
//!   one naming no open transaction is ignored (its commit finds no transaction: `F`);
//! - atomic increments (`A`) fail their transaction; timestamps (`T`) are accepted
//!   and ignored, as Dovecot's own file dict does, and so is `V` (coid logs no values);
//! - a `B` with a non-zero expiry (major 4) opens a failed transaction: coid's keys
//!   never expire (METADATA has no TTL), so its commit is answered `F` rather than
//!   storing keys the client wanted gone; Dovecot's METADATA always sends 0;
//! - a `B` beyond `max_transactions` is not opened (its commit fails the same way);
//! - an unknown command (also `D` in major 4) gets `F` and the connection is closed,
//!   as is a connection whose first line is not a handshake coid can serve (major 3
//!   or 4, string values; any other major is refused, as Dovecot's own server refuses
//!   all but its own), and a transaction command whose id cannot be read at all
//!   (Dovecot's server drops the connection in these cases too; the client then fails
//!   whatever was open).

use super::protocol::{
    self, Command, Hello, IterFlags, ParseError, Reply, VALUE_TYPE_STRING, Version,
};
pub use super::transactions::Change;
use super::transactions::Transactions;
use crate::lmtp::line::{LineReceiver, TooLong};

/// Bytes of an overlong line that are kept: the command letter and transaction id in
/// them let the session fail exactly the transaction (or answer exactly the command)
/// the line belonged to, instead of dropping the connection.
const TOO_LONG_HEAD: usize = 32;

/// Limits a session enforces; each has a key in `[dict]`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest line accepted, LF included.
    pub max_line: usize,
    /// Open transactions per connection.
    pub max_transactions: usize,
    /// Changes per transaction.
    pub max_changes: usize,
    /// Uncommitted key and value bytes per connection.
    pub max_pending_bytes: usize,
    /// Rows one iteration returns at most.
    pub max_rows: usize,
}

/// What the connection must do next, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Write this reply.
    Reply(Reply),
    /// Look the key up and write the answer.
    Lookup {
        /// Whose (as Dovecot names the user).
        username: String,
        /// The dict key.
        key: String,
    },
    /// Run the iteration and write its rows and end.
    Iterate {
        /// Whose.
        username: String,
        /// The key prefix.
        path: String,
        /// Depth, sorting, values.
        flags: IterFlags,
        /// Most rows to return.
        limit: usize,
    },
    /// Apply the changes in one store transaction and write the commit reply.
    Commit {
        /// Transaction id (for the reply).
        id: u32,
        /// Answering `D`.
        async_: bool,
        /// Whose.
        username: String,
        /// Every change, in order.
        changes: Vec<Change>,
    },
    /// Close the connection after writing what is pending.
    Close,
}

enum State {
    /// Waiting for the first line, `H`.
    Handshake,
    /// Serving commands as the handshake's version defines them.
    Ready(Version),
    Closed,
}

/// One dict proxy session.
pub struct Session {
    state: State,
    lines: LineReceiver,
    limits: Limits,
    transactions: Transactions,
}

impl Session {
    /// A new session, waiting for the handshake (the server says nothing first).
    pub fn new(limits: Limits) -> Session {
        Session {
            state: State::Handshake,
            lines: LineReceiver::keeping_head(limits.max_line, TOO_LONG_HEAD),
            transactions: Transactions::new(&limits),
            limits,
        }
    }

    /// True while a transaction is open or a line is half read: shutdown lets such a
    /// session finish instead of cutting it off.
    pub fn in_transaction(&self) -> bool {
        !self.transactions.is_empty() || self.lines.is_partial()
    }

    /// The version the handshake negotiated; `None` before it (and after a close).
    pub fn version(&self) -> Option<Version> {
        match self.state {
            State::Ready(version) => Some(version),
            State::Handshake | State::Closed => None,
        }
    }

    /// True after a fatal condition or [`Session::close`].
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Ends the session (idle timeout, shutdown); open transactions are dropped.
    pub fn close(&mut self, events: &mut Vec<Event>) {
        if !self.is_closed() {
            self.state = State::Closed;
            self.transactions.clear();
            events.push(Event::Close);
        }
    }

    /// Feeds client bytes; consumes all of them unless the session closes.
    pub fn ingest(&mut self, input: &[u8], events: &mut Vec<Event>) {
        let mut rest = input;
        while !rest.is_empty() && !self.is_closed() {
            let (used, line) = self.lines.next_line(rest);
            rest = rest.get(used..).unwrap_or_default();
            match line {
                None => {}
                Some(Ok(line)) => {
                    self.handle_line(line.strip_suffix(b"\n").unwrap_or(&line), events)
                }
                Some(Err(TooLong { head })) => self.handle_too_long(&head, events),
            }
        }
    }

    fn handle_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        match self.state {
            State::Handshake => self.handle_hello(protocol::parse_hello(line), events),
            State::Ready(version) => match protocol::parse(line, version) {
                Ok(command) => self.handle_command(command, events),
                Err(err) => self.handle_bad(version, &err, events),
            },
            State::Closed => {}
        }
    }

    fn handle_hello(&mut self, parsed: Result<Hello, ParseError>, events: &mut Vec<Event>) {
        let served = parsed
            .as_ref()
            .ok()
            .filter(|h| h.value_type == VALUE_TYPE_STRING);
        match served.and_then(|hello| Version::from_major(hello.major)) {
            Some(version) => {
                tracing::debug!(?version, hello = ?parsed, "dict handshake");
                self.state = State::Ready(version);
            }
            None => {
                tracing::warn!(line = ?parsed, "dict client: not a handshake coid serves; closing");
                self.close(events);
            }
        }
    }

    fn handle_command(&mut self, command: Command, events: &mut Vec<Event>) {
        match command {
            Command::Hello(_) => self.fail_and_close("handshake sent twice", events),
            Command::Lookup { key, username } => {
                events.push(match no_username(&username) {
                    Some(error) => Event::Reply(Reply::Failed(error.into())),
                    None => Event::Lookup { username, key },
                });
            }
            Command::Iterate {
                flags,
                max_rows,
                path,
                username,
            } => self.handle_iterate(flags, max_rows, path, username, events),
            Command::Begin {
                id,
                username,
                expire_secs,
            } => {
                let failure = no_username(&username).or_else(|| no_expiry(expire_secs));
                self.transactions.begin(id, username, failure);
            }
            Command::Commit { id, async_ } => events.push(self.handle_commit(id, async_)),
            Command::Rollback { id } => self.transactions.rollback(id),
            Command::Set { id, key, value } => self.transactions.change(id, key, Some(value)),
            Command::Unset { id, key } => self.transactions.change(id, key, None),
            Command::AtomicInc { id } => self
                .transactions
                .fail(id, "atomic increment is not supported"),
            Command::Timestamp { .. } | Command::HideLogValues { .. } => {}
        }
    }

    fn handle_iterate(
        &mut self,
        flags: IterFlags,
        max_rows: u64,
        path: String,
        username: String,
        events: &mut Vec<Event>,
    ) {
        if let Some(error) = no_username(&username) {
            return events.push(Event::Reply(Reply::Failed(error.into())));
        }
        let wanted = usize::try_from(max_rows).unwrap_or(usize::MAX);
        let limit = match wanted {
            0 => self.limits.max_rows,
            n => n.min(self.limits.max_rows),
        };
        events.push(Event::Iterate {
            username,
            path,
            flags,
            limit,
        });
    }

    fn handle_commit(&mut self, id: u32, async_: bool) -> Event {
        match self.transactions.commit(id) {
            Ok((username, changes)) => Event::Commit {
                id,
                async_,
                username,
                changes,
            },
            Err(error) => Event::Reply(Reply::CommitFailed {
                id: Some(id),
                async_,
                error: error.into(),
            }),
        }
    }

    /// A line that did not parse: answer or fail what it meant (see the module doc).
    fn handle_bad(&mut self, version: Version, err: &ParseError, events: &mut Vec<Event>) {
        tracing::warn!(error = %err, "dict client sent a bad line");
        self.answer_broken(version, err.command, err.id, err.reason, events);
    }

    fn handle_too_long(&mut self, head: &[u8], events: &mut Vec<Event>) {
        let (command, id) = protocol::peek(head);
        tracing::warn!(command = %char::from(command), id, max = self.limits.max_line, "dict client sent a line that is too long");
        match self.state {
            State::Ready(version) => {
                self.answer_broken(version, command, id, "line too long", events)
            }
            State::Handshake | State::Closed => self.close(events),
        }
    }

    /// `command` is the line's first byte, read as `version` defines it: a letter
    /// that version lacks (`D` in 4) is an unknown command.
    fn answer_broken(
        &mut self,
        version: Version,
        command: u8,
        id: Option<u32>,
        reason: &'static str,
        events: &mut Vec<Event>,
    ) {
        if !version.knows(command) {
            return self.fail_and_close(reason, events);
        }
        match (command, id) {
            (b'L' | b'I', _) => events.push(Event::Reply(Reply::Failed(reason.into()))),
            (b'C' | b'D', _) => {
                if let Some(id) = id {
                    self.transactions.rollback(id);
                }
                events.push(Event::Reply(Reply::CommitFailed {
                    id,
                    async_: command == b'D',
                    error: reason.into(),
                }));
            }
            (b'R', Some(id)) => self.transactions.rollback(id),
            (b'B' | b'S' | b'U' | b'A' | b'T' | b'V', Some(id)) => {
                self.transactions.fail(id, reason)
            }
            (b'B' | b'S' | b'U' | b'A' | b'T' | b'V' | b'R', None) => self.close(events),
            _ => self.fail_and_close(reason, events),
        }
    }

    fn fail_and_close(&mut self, reason: &str, events: &mut Vec<Event>) {
        events.push(Event::Reply(Reply::Failed(reason.into())));
        self.close(events);
    }
}

/// coid keeps data per user: a command without a username is refused.
fn no_username(username: &str) -> Option<&'static str> {
    username.is_empty().then_some("no username given")
}

/// coid's keys never expire (RFC 5464 METADATA has no TTL), so a 2.4 transaction
/// asking for expiry is refused, as Dovecot refuses it for dict drivers without
/// expiry support (`src/lib-dict/dict.c` at 2.4.1, `dict_transaction_begin`),
/// instead of storing keys forever that the client wanted gone.
fn no_expiry(expire_secs: u32) -> Option<&'static str> {
    if expire_secs == 0 {
        return None;
    }
    tracing::warn!(
        expire_secs,
        "dict client asked for key expiry, which coid does not keep; failing the transaction"
    );
    Some("key expiry is not supported")
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
