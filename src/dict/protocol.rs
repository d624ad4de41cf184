//! The wire protocol of Dovecot 2.3's dict proxy, sans-IO: one client line in, a typed
//! [`Command`] out; a typed [`Reply`] in, bytes out. No sockets, no store.
//!
//! # The protocol (Dovecot 2.3; 2.4 changed it)
//! Read in `src/lib-dict/dict-client.{c,h}` (the client Dovecot runs for
//! `mail_attribute_dict = proxy:<socket>:<name>`), `src/dict/dict-commands.c` and
//! `src/dict/dict-connection.c` (Dovecot's own server) and `src/lib/strescape.c` at tag
//! 2.3.19.1, then confirmed against a running Dovecot 2.3.19.1 doing IMAP METADATA
//! (RFC 5464) through a logging listener. Facts:
//!
//! - Lines end in LF. Fields are separated by TAB; inside a field `\x01` escapes:
//!   `\x01 0`=NUL, `\x01 1`=`\x01`, `\x01 t`=TAB, `\x01 r`=CR, `\x01 n`=LF
//!   (`str_tabescape`). Seen on the wire: a value `tab<TAB>here` arrives as
//!   `tab\x01there`, `a<CR><LF>b\x01c` as `a\x01r\x01nb\x011c`.
//! - Handshake, client first, no reply: `H3<TAB>2<TAB>0<TAB><TAB>coid` = major 3,
//!   minor 2, value type 0 (string), an empty user, the dict name from the URI.
//! - The username travels per command, as the last field of `L`, `I` and `B`
//!   (`alice@example.org`); `S`/`U`/`C`/`R` name only the transaction id.
//! - `L<key><TAB><user>` → `O<value>` | `N` (not found) | `F<error>`.
//! - `I<flags><TAB><max_rows><TAB><path><TAB><user>` → rows `O<key><TAB><value>`, then
//!   an empty line; `F<error>` instead ends it with an error. Flags (`dict.h`):
//!   1 recurse, 2 sort by key, 4 sort by value, 8 no value, 16 exact key, 32 async.
//!   Mailbox attribute iteration always sends flags 9 (recurse + no value) and
//!   max_rows 0 (no limit); rows are then `O<key><TAB>` with an empty value.
//! - Transactions: `B<id><TAB><user>`, then `S<id><TAB><key><TAB><value>`,
//!   `U<id><TAB><key>`, `A<id><TAB><key><TAB><diff>` (atomic increment),
//!   `T<id><TAB><secs><TAB><nsecs>` (timestamp), none of which gets a reply; then
//!   `C<id>` → `O<id>` | `N<id>` | `F<id><TAB><error>` | `W<id><TAB><error>` (write
//!   uncertain), or `R<id>` (rollback, no reply). `D<id>` (async commit) is answered
//!   like `C` with an `A` in front; the 2.3 client never sends it. Ids count up per
//!   connection; several transactions may be open at once (seen: `B4`, `B5`, `C4`,
//!   `C5` for one SETMETADATA on a private and a shared entry). IMAP attributes never
//!   use `A` or `T`.
//! - Replies go in command order. The server may instead tag them (`*<n>` then
//!   `+<n><TAB>...`) and may append four timing fields; both are optional and coid
//!   uses neither.
//! - The client connects per IMAP command and closes when idle (its default
//!   `idle_msecs` is 0). A failed commit makes the IMAP command answer
//!   `NO [SERVERBUG] Internal error occurred...`; the dict's error text goes to the
//!   Dovecot log only.
//! - Dovecot's own server allows 64 KiB per line, but the client sends longer lines
//!   (a 100 000-byte METADATA value went out as one `S` line).
//! - Dialogues seen: `GETMETADATA "" (e1 e2)` is `L e1`, `L e2` (one connection).
//!   `GETMETADATA (DEPTH 1) "" (/private/x)` is `L` of the entry, then `I9<TAB>0` of
//!   its key plus `/`, then `L` of every key listed (Dovecot applies the depth itself).
//!   `GETMETADATA (DEPTH infinity) "" (/private)` iterates `.../pvt/server//` (sic),
//!   so it lists nothing, with Dovecot's own dicts too. `SETMETADATA` is `B`, one
//!   `S`/`U` per entry, `C`; NIL is `U`. Deleting a mailbox iterates `priv/<guid>/`
//!   and `shared/<guid>/` and unsets what they list. Writes Dovecot refuses itself
//!   (`/private/vendor/vendor.dovecot/pvt/...`, the server's `/shared/comment`) never
//!   reach the dict.
//!
//! Keys are documented in `super::keys`.

pub use super::reply::{Reply, escape_into};
use crate::store::Depth;

/// The protocol major version coid speaks (`DICT_CLIENT_PROTOCOL_MAJOR_VERSION`).
pub const MAJOR_VERSION: u32 = 3;
/// Value type "string" in the handshake; the only one coid serves.
pub const VALUE_TYPE_STRING: u32 = 0;

/// Iteration flags (`enum dict_iterate_flags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IterFlags(pub u32);

impl IterFlags {
    const RECURSE: u32 = 0x01;
    const SORT_BY_VALUE: u32 = 0x04;
    const NO_VALUE: u32 = 0x08;
    const EXACT_KEY: u32 = 0x10;

    /// Which keys below the path match (as Dovecot's file dict decides).
    pub fn depth(self) -> Depth {
        if self.0 & Self::RECURSE != 0 {
            Depth::All
        } else if self.0 & Self::EXACT_KEY != 0 {
            Depth::Exact
        } else {
            Depth::Children
        }
    }

    /// Rows carry no values.
    pub fn no_value(self) -> bool {
        self.0 & Self::NO_VALUE != 0
    }

    /// Rows sorted by value instead of by key.
    pub fn sort_by_value(self) -> bool {
        self.0 & Self::SORT_BY_VALUE != 0
    }
}

/// One client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `H`: the handshake.
    Hello {
        /// Protocol major version (3).
        major: u32,
        /// Protocol minor version.
        minor: u32,
        /// 0 string, 1 uint32.
        value_type: u32,
        /// The dict name from `proxy:<socket>:<name>`.
        dict: String,
    },
    /// `L`: one key.
    Lookup {
        /// The dict key.
        key: String,
        /// Whose.
        username: String,
    },
    /// `I`: keys below a path.
    Iterate {
        /// Depth, sorting, values or not.
        flags: IterFlags,
        /// Most rows wanted; 0 for all.
        max_rows: u64,
        /// The key prefix.
        path: String,
        /// Whose.
        username: String,
    },
    /// `B`: open a transaction.
    Begin {
        /// Transaction id.
        id: u32,
        /// Whose.
        username: String,
    },
    /// `C` (`async_: false`) or `D` (`true`): commit.
    Commit {
        /// Transaction id.
        id: u32,
        /// `D`: reply with an `A` in front.
        async_: bool,
    },
    /// `R`: drop a transaction.
    Rollback {
        /// Transaction id.
        id: u32,
    },
    /// `S`: set a key.
    Set {
        /// Transaction id.
        id: u32,
        /// The dict key.
        key: String,
        /// The new value.
        value: String,
    },
    /// `U`: remove a key.
    Unset {
        /// Transaction id.
        id: u32,
        /// The dict key.
        key: String,
    },
    /// `A`: add to a counter (not supported by coid: the commit fails).
    AtomicInc {
        /// Transaction id.
        id: u32,
    },
    /// `T`: a timestamp for the transaction's changes (accepted and ignored).
    Timestamp {
        /// Transaction id.
        id: u32,
    },
}

/// Why a line is not a [`Command`]; says which command and transaction it meant, as
/// far as that could be read, so the session can fail the right thing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dict command {:?}: {reason}", char::from(*command))]
pub struct ParseError {
    /// The first byte of the line (0 for an empty line).
    pub command: u8,
    /// The transaction id, if the first field was one.
    pub id: Option<u32>,
    /// What was wrong.
    pub reason: &'static str,
}

/// The first byte and, if it parses, the first field as a transaction id; works on
/// the head of a line too long to keep.
pub fn peek(line: &[u8]) -> (u8, Option<u32>) {
    let command = line.first().copied().unwrap_or(0);
    let first = line.get(1..).unwrap_or_default();
    let field = first.split(|&b| b == b'\t').next().unwrap_or_default();
    let id = std::str::from_utf8(field).ok().and_then(|s| s.parse().ok());
    (command, id)
}

/// Parses one line (without its LF).
///
/// # Errors
/// Unknown command, wrong number of fields, bad numbers, bad escapes, NUL or
/// non-UTF-8 text.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (command, id) = peek(line);
    let fail = |reason| ParseError {
        command,
        id,
        reason,
    };
    if !b"HLIBCDRSUAT".contains(&command) {
        return Err(fail("unknown command"));
    }
    let fields = split(line.get(1..).unwrap_or_default()).map_err(fail)?;
    let need_id = || id.ok_or(fail("bad transaction id"));
    let number = |s: &str| s.parse::<u64>().map_err(|_| fail("bad number"));
    let small = |s: &str| s.parse::<u32>().map_err(|_| fail("bad number"));
    match (command, fields.as_slice()) {
        (b'H', [major, minor, value_type, _user, dict, ..]) => Ok(Command::Hello {
            major: small(major)?,
            minor: small(minor)?,
            value_type: small(value_type)?,
            dict: dict.clone(),
        }),
        (b'L', [key, rest @ ..]) if rest.len() <= 1 => Ok(Command::Lookup {
            key: key.clone(),
            username: rest.first().cloned().unwrap_or_default(),
        }),
        (b'I', [flags, max_rows, path, rest @ ..]) if rest.len() <= 1 => Ok(Command::Iterate {
            flags: IterFlags(small(flags)?),
            max_rows: number(max_rows)?,
            path: path.clone(),
            username: rest.first().cloned().unwrap_or_default(),
        }),
        (b'B', [_, rest @ ..]) if rest.len() <= 1 => Ok(Command::Begin {
            id: need_id()?,
            username: rest.first().cloned().unwrap_or_default(),
        }),
        (b'C' | b'D', [_]) => Ok(Command::Commit {
            id: need_id()?,
            async_: command == b'D',
        }),
        (b'R', [_]) => Ok(Command::Rollback { id: need_id()? }),
        (b'S', [_, key, value]) => Ok(Command::Set {
            id: need_id()?,
            key: key.clone(),
            value: value.clone(),
        }),
        (b'U', [_, key]) => Ok(Command::Unset {
            id: need_id()?,
            key: key.clone(),
        }),
        (b'A', [_, _, diff]) => {
            diff.parse::<i64>().map_err(|_| fail("bad number"))?;
            Ok(Command::AtomicInc { id: need_id()? })
        }
        (b'T', [_, secs, nsecs]) => {
            secs.parse::<i64>().map_err(|_| fail("bad number"))?;
            small(nsecs)?;
            Ok(Command::Timestamp { id: need_id()? })
        }
        _ => Err(fail("wrong number of fields")),
    }
}

/// Splits on TAB and unescapes each field.
fn split(data: &[u8]) -> Result<Vec<String>, &'static str> {
    data.split(|&b| b == b'\t').map(unescape).collect()
}

/// Undoes `str_tabescape`. Stricter than Dovecot (which passes unknown escapes
/// through): only the five escapes Dovecot writes are accepted, and no NUL at all,
/// since coid's keys and values are text.
///
/// # Errors
/// A bad or truncated escape, a NUL, or bytes that are not UTF-8.
pub fn unescape(field: &[u8]) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        let byte = match b {
            0 => return Err("NUL in a field"),
            1 => match bytes.next() {
                Some(b'1') => 1,
                Some(b't') => b'\t',
                Some(b'r') => b'\r',
                Some(b'n') => b'\n',
                Some(b'0') => return Err("NUL in a field"),
                _ => return Err("bad escape"),
            },
            b => b,
        };
        out.push(byte);
    }
    String::from_utf8(out).map_err(|_| "not UTF-8")
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
