//! The dict proxy's replies as typed values, and their encoding (Dovecot 2.3's
//! `str_tabescape` escaping, `src/lib/strescape.c`). Sans-IO; the wire format is
//! summarised in `super::protocol`.

/// Appends `text` with `str_tabescape`'s escapes.
pub fn escape_into(text: &str, out: &mut Vec<u8>) {
    for &b in text.as_bytes() {
        match b {
            0 => out.extend_from_slice(b"\x010"),
            1 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            b => out.push(b),
        }
    }
}

/// One server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `O<value>`: a lookup found the key.
    Value(String),
    /// `N`: a lookup found nothing.
    NotFound,
    /// `F<error>`: a lookup or an iteration failed (also ends the iteration).
    Failed(String),
    /// `O<key><TAB><value>`: one iteration row; `None` for "no value" iterations.
    Row {
        /// The dict key.
        key: String,
        /// Its value, unless the client asked for keys only.
        value: Option<String>,
    },
    /// An empty line: the iteration is complete.
    EndOfRows,
    /// `O<id>` (`A` in front for `D`): the transaction is stored.
    Committed {
        /// Transaction id.
        id: u32,
        /// Answering `D`.
        async_: bool,
    },
    /// `F<id><TAB><error>` (`A` in front for `D`): nothing of it was stored.
    CommitFailed {
        /// Transaction id, if the command had a readable one.
        id: Option<u32>,
        /// Answering `D`.
        async_: bool,
        /// Why (ends up in Dovecot's log).
        error: String,
    },
}

impl Reply {
    /// Appends the reply line, LF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Value(value) => {
                out.push(b'O');
                escape_into(value, out);
            }
            Reply::NotFound => out.push(b'N'),
            Reply::Failed(error) => {
                out.push(b'F');
                escape_into(error, out);
            }
            Reply::Row { key, value } => {
                out.push(b'O');
                escape_into(key, out);
                out.push(b'\t');
                escape_into(value.as_deref().unwrap_or_default(), out);
            }
            Reply::EndOfRows => {}
            Reply::Committed { id, async_ } => commit_head(out, *async_, b'O', Some(*id)),
            Reply::CommitFailed { id, async_, error } => {
                commit_head(out, *async_, b'F', *id);
                out.push(b'\t');
                escape_into(error, out);
            }
        }
        out.push(b'\n');
    }
}

fn commit_head(out: &mut Vec<u8>, async_: bool, code: u8, id: Option<u32>) {
    if async_ {
        out.push(b'A');
    }
    out.push(code);
    if let Some(id) = id {
        out.extend_from_slice(id.to_string().as_bytes());
    }
}
