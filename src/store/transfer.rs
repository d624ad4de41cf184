//! Moving a whole state store to another one (`coid state export|import`, issue 11):
//! the engine-neutral row type ([`Row`]) every engine writes out and reads in, the
//! file format around it, and the reader that turns a file back into rows.
//!
//! The format is JSON lines: a first line naming it (`{"coid-state":1,"schema":N,
//! "engine":"sqlite"}`; `schema` and `engine` say where it came from, only
//! `coid-state` is checked), then one object per row, `"row"` naming its kind. Every
//! column is kept as stored: values are text in both engines (the dict proxy refuses
//! NUL and non-UTF-8 before anything is stored, `crate::dict::protocol`), and a JSON
//! string holds any such text exactly (control characters escaped). Push queue rows
//! keep their times, attempts and dedupe keys; their `seq` is given anew, in the
//! file's order (the export's `seq` order). A payload SQLite shares between rows
//! (`push_payloads`) is written into each row.
//!
//! What the engines promise (`Engine::export`, `Engine::import`): an export is one
//! consistent snapshot, streamed row by row; an import is one transaction that first
//! checks the target holds no state at all, and writes nothing on any error.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use super::StoreError;

/// The format version this coid writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// The longest line an import reads (bytes). Rows are small (a push payload is at
/// most a few KB); the bound keeps a wrong file from filling memory.
pub const MAX_LINE: usize = 1 << 20;

/// The file's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The format version ([`FORMAT_VERSION`]).
    #[serde(rename = "coid-state")]
    pub format: u64,
    /// The exporting store's schema version (for the reader's information).
    pub schema: i64,
    /// The exporting engine (`sqlite`, `postgresql`).
    pub engine: String,
}

/// One row of state, whichever engine holds it. Times as the engines keep them (unix
/// seconds; the push queue's in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "row", rename_all = "snake_case", deny_unknown_fields)]
pub enum Row {
    /// A METADATA entry (`user_metadata`, [`super::Table::Metadata`]).
    Metadata {
        username: String,
        entry: String,
        value: String,
        updated: i64,
    },
    /// Another dict attribute (`dict_attributes`, [`super::Table::Attributes`]).
    Attribute {
        username: String,
        key: String,
        value: String,
        updated: i64,
    },
    /// A server secret (the VAPID key: it must move unchanged, clients' push
    /// subscriptions are bound to it).
    Secret {
        name: String,
        value: String,
        created: i64,
    },
    /// A Web Push subscription.
    Subscription {
        username: String,
        id: String,
        client: String,
        device: String,
        msgtype: String,
        endpoint: String,
        p256dh: String,
        auth: String,
        created: i64,
        validation: String,
        validated_at: Option<i64>,
    },
    /// A Delta Chat device token.
    Token {
        username: String,
        id: String,
        token: String,
        created: i64,
        updated: i64,
    },
    /// A pending push (times in unix milliseconds).
    Push {
        kind: i64,
        username: String,
        target: String,
        payload: String,
        with_content: bool,
        validation: bool,
        attempts: i64,
        not_before: i64,
        deadline: i64,
        created: i64,
        dedupe: Option<String>,
    },
}

/// Why an import (or reading its file) failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The target store holds state already.
    #[error(
        "the target state store is not empty ({0}); import only into a store that holds no \
         state, so two deployments are never mixed and no VAPID key is replaced"
    )]
    NotEmpty(String),
    /// The first line is not a header this coid reads.
    #[error("line 1: {0}")]
    Header(String),
    /// A line is not a row.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The state file could not be read or written.
    #[error("state file: {0}")]
    Io(#[from] std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TransferError {
    fn from(err: rusqlite::Error) -> Self {
        TransferError::Store(err.into())
    }
}

impl From<::postgres::Error> for TransferError {
    fn from(err: ::postgres::Error) -> Self {
        TransferError::Store(err.into())
    }
}

/// The rows of a state file, one per line after the header, read as they are asked
/// for (bounded memory: one line of at most [`MAX_LINE`] bytes at a time).
pub struct Reader<R> {
    input: R,
    /// The last line read (1-based).
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header line.
    ///
    /// # Errors
    /// [`TransferError::Header`]: missing, not JSON, or an unknown format version.
    pub fn new(input: R) -> Result<(Header, Reader<R>), TransferError> {
        let mut reader = Reader {
            input,
            line: 0,
            buf: Vec::new(),
        };
        let bad = |reason: String| TransferError::Header(reason);
        let Some(text) = reader.next_line().map_err(|e| bad(e.to_string()))? else {
            return Err(bad("empty file: no coid-state header".into()));
        };
        let header: Header = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a coid-state header: {e}")))?;
        if header.format != FORMAT_VERSION {
            return Err(bad(format!(
                "coid-state format {} is unknown to this coid (it reads {FORMAT_VERSION})",
                header.format
            )));
        }
        Ok((header, reader))
    }

    /// The next line's text, without its newline; `None` at the end.
    fn next_line(&mut self) -> Result<Option<String>, TransferError> {
        self.buf.clear();
        let limit = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
        let read = std::io::Read::take(&mut self.input, limit).read_until(b'\n', &mut self.buf)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        } else if self.buf.len() > MAX_LINE {
            return Err(TransferError::BadLine {
                line,
                reason: format!("longer than {MAX_LINE} bytes"),
            });
        }
        let text = std::str::from_utf8(&self.buf).map_err(|_| TransferError::BadLine {
            line,
            reason: "not UTF-8".into(),
        })?;
        Ok(Some(text.to_owned()))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Row, TransferError>;

    fn next(&mut self) -> Option<Self::Item> {
        let text = match self.next_line() {
            Ok(Some(text)) => text,
            Ok(None) => return None,
            Err(err) => return Some(Err(err)),
        };
        let line = self.line;
        let bad = |reason: String| TransferError::BadLine { line, reason };
        let row = match serde_json::from_str(&text) {
            Ok(row) => row,
            Err(err) => return Some(Err(bad(err.to_string()))),
        };
        if let Row::Push { kind, .. } = &row
            && super::PushKind::from_code(*kind).is_none()
        {
            return Some(Err(bad(format!("push of unknown kind {kind}"))));
        }
        Some(Ok(row))
    }
}

/// The tables that hold state, for the emptiness check (the counters' tables and
/// SQLite's `push_payloads` follow the rows).
pub(super) const STATE_TABLES: [&str; 6] = [
    "user_metadata",
    "dict_attributes",
    "server_secrets",
    "push_subscriptions",
    "deltachat_tokens",
    "push_queue",
];

#[cfg(test)]
#[path = "transfer_tests.rs"]
mod tests;
