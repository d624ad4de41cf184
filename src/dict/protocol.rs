//! The wire protocol of Dovecot's dict proxy, majors 3 (Dovecot 2.3) and 4 (Dovecot
//! 2.4), sans-IO: one client line in, a typed [`Command`] out; a typed [`Reply`] in,
//! bytes out. No sockets, no store.
//!
//! # The protocol (Dovecot 2.3, major 3)
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
//! - `V<id><TAB><yes|no>` (hide values in logs, no reply) exists from 2.3.20 on
//!   (`dict-client.h`, `dict-commands.c` `cmd_hide_log_values`); only Dovecot's own
//!   dict server forwards it, IMAP never sends it. coid logs no values anyway.
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
//! # What Dovecot 2.4 (major 4) changed
//! Read in `src/lib-dict-extra/dict-client.{c,h}` (the client moved there),
//! `src/dict/dict-commands.c`, `src/dict/dict-connection.c`, `src/lib-dict/dict.{c,h}`
//! and `src/lib-storage/mail-user.c` at tag 2.4.1, against the same files at 2.3.21.1:
//!
//! - Handshake `H4<TAB>0<TAB>0<TAB><TAB><dict_proxy_name>`: major 4, minor 0; the value
//!   type is always 0 and the user empty, as before. Dovecot's own 2.4 server closes
//!   any other major, as its 2.3 server closed any but 3 ([`Version`]).
//! - `B<id><TAB><user><TAB><expire_secs>`: one field more, always sent
//!   (`client_dict_transaction_send_begin`). A non-zero value asks that the keys the
//!   transaction sets vanish after that many seconds: the proxy client advertises
//!   `DICT_DRIVER_FLAG_SUPPORT_EXPIRE_SECS`, and a server may honour it (Dovecot's
//!   redis dict sets an EXPIRE, its SQL dict stores a deadline that the dict server's
//!   expire scan deletes) or fail the transaction, as `dict_transaction_begin` does for
//!   drivers without the flag ("Expiration not supported by dict driver"). Only
//!   `doveadm dict set --expire-secs` and Lua set it; mail attributes never do
//!   (`mail_user_get_dict_op_settings` sets the username and home only), so METADATA
//!   always sends 0. coid keeps no expiry (METADATA has no TTL) and refuses a
//!   transaction asking for one: its commit fails instead of storing keys forever.
//! - No `D`: the client always commits with `C`, and the 2.4 server dropped
//!   `cmd_commit_async`, so `D` is an unknown command there (the connection is closed).
//! - Unchanged: `L`, `I` (same fields and flags), `S`, `U`, `A`, `T`, `R`, `V`, the
//!   reply codes and escaping, untagged replies in command order (the 2.4 client takes
//!   an untagged line as the answer to its oldest command), and the key layout
//!   (`index-attribute.c` `key_get_prefixed`).
//!
//! Keys are documented in `super::keys`.

pub use super::reply::{Reply, escape_into};
use crate::store::Depth;

/// A protocol major version coid speaks (`DICT_CLIENT_PROTOCOL_MAJOR_VERSION`),
/// negotiated by the handshake; it decides how the rest of the lines read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Major 3: Dovecot 2.3 (`src/lib-dict/dict-client.h` at 2.3.19.1 to 2.3.21.1).
    V3,
    /// Major 4: Dovecot 2.4 (`src/lib-dict-extra/dict-client.h` at 2.4.1).
    V4,
}

impl Version {
    /// The version for a handshake's major, if coid speaks it.
    pub fn from_major(major: u32) -> Option<Version> {
        match major {
            3 => Some(Version::V3),
            4 => Some(Version::V4),
            _ => None,
        }
    }

    /// The command letters a client of this version sends (`enum dict_protocol_cmd`);
    /// `D` is gone in 4.
    fn commands(self) -> &'static [u8] {
        match self {
            Version::V3 => b"HLIBCDRSUATV",
            Version::V4 => b"HLIBCRSUATV",
        }
    }

    /// True if `command` is one of this version's commands.
    pub fn knows(self, command: u8) -> bool {
        self.commands().contains(&command)
    }
}

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

/// The handshake, `H<major><TAB><minor><TAB><value type><TAB><user><TAB><dict>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol major version (3 or 4 for coid; see [`Version::from_major`]).
    pub major: u32,
    /// Protocol minor version (2 in 2.3, 0 in 2.4).
    pub minor: u32,
    /// 0 string, 1 uint32.
    pub value_type: u32,
    /// The dict name (2.3: from `proxy:<socket>:<name>`; 2.4: `dict_proxy_name`).
    pub dict: String,
}

/// One client line after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `H`: a handshake again (a protocol error after the first line).
    Hello(Hello),
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
        /// Seconds until the keys it sets expire; 0 for never (always 0 in major 3,
        /// which has no such field).
        expire_secs: u32,
    },
    /// `C` (`async_: false`) or `D` (`true`, major 3 only): commit.
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
    /// `V`: hide the transaction's values in logs (accepted and ignored: coid never
    /// logs values).
    HideLogValues {
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

/// Parses the first line of a connection, which must be a handshake. Its fields do
/// not depend on the version, so this is the same for every major.
///
/// # Errors
/// Not `H`, too few fields, bad numbers, bad escapes, NUL or non-UTF-8 text.
pub fn parse_hello(line: &[u8]) -> Result<Hello, ParseError> {
    let command = line.first().copied().unwrap_or(0);
    let fail = |reason| ParseError {
        command,
        id: None,
        reason,
    };
    if command != b'H' {
        return Err(fail("not a handshake"));
    }
    let fields = split(line.get(1..).unwrap_or_default()).map_err(fail)?;
    hello(&fields).map_err(fail)
}

/// The handshake's fields (after the `H`); more than five are allowed, as Dovecot's
/// server allows them (`dict_connection_handshake_args`).
fn hello(fields: &[String]) -> Result<Hello, &'static str> {
    let small = |s: &str| s.parse::<u32>().map_err(|_| "bad number");
    match fields {
        [major, minor, value_type, _user, dict, ..] => Ok(Hello {
            major: small(major)?,
            minor: small(minor)?,
            value_type: small(value_type)?,
            dict: dict.clone(),
        }),
        _ => Err("wrong number of fields"),
    }
}

/// Parses one line (without its LF) as a client of `version` sends it.
///
/// # Errors
/// A command `version` does not have, wrong number of fields, bad numbers, bad
/// escapes, NUL or non-UTF-8 text.
pub fn parse(line: &[u8], version: Version) -> Result<Command, ParseError> {
    let (command, id) = peek(line);
    let fail = |reason| ParseError {
        command,
        id,
        reason,
    };
    if !version.knows(command) {
        return Err(fail("unknown command"));
    }
    let fields = split(line.get(1..).unwrap_or_default()).map_err(fail)?;
    let need_id = || id.ok_or(fail("bad transaction id"));
    let number = |s: &str| s.parse::<u64>().map_err(|_| fail("bad number"));
    let small = |s: &str| s.parse::<u32>().map_err(|_| fail("bad number"));
    match (command, fields.as_slice()) {
        (b'H', _) => hello(&fields).map(Command::Hello).map_err(fail),
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
        (b'B', [_, rest @ ..]) => {
            let (username, expire) =
                begin_fields(version, rest).ok_or(fail("wrong number of fields"))?;
            Ok(Command::Begin {
                id: need_id()?,
                username: username.cloned().unwrap_or_default(),
                expire_secs: expire.map_or(Ok(0), |e| small(e))?,
            })
        }
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
        // The booleans Dovecot's server reads (`str_parse_get_bool`); the client
        // writes `yes` or `no`.
        (b'V', [_, hide]) => match hide.to_ascii_lowercase().as_str() {
            "yes" | "y" | "1" | "no" => Ok(Command::HideLogValues { id: need_id()? }),
            _ => Err(fail("bad boolean")),
        },
        _ => Err(fail("wrong number of fields")),
    }
}

/// `B`'s fields after the id: the username and the expiry, if present. Major 3 sends
/// `B<id><TAB><user>` (`dict-client.c` at 2.3.19.1, line 358; the user may be
/// missing, as Dovecot's server allows); major 4 always sends
/// `B<id><TAB><user><TAB><expire secs>` (at 2.4.1, lines 364-367) and nothing else
/// is accepted from it. `None`: wrong number of fields.
fn begin_fields(version: Version, rest: &[String]) -> Option<(Option<&String>, Option<&String>)> {
    match (version, rest) {
        (Version::V3, [] | [_]) => Some((rest.first(), None)),
        (Version::V4, [username, expire]) => Some((Some(username), Some(expire))),
        _ => None,
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
