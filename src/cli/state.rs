//! `coid state export|import`: the whole state store, out to standard output and in
//! from standard input, in the JSON-lines format of `crate::store::transfer`, so a
//! host's SQLite state can move into the PostgreSQL store several nodes share (or
//! back). Run with coid stopped on the old host: an export is one snapshot, and
//! pushes queued after it would not move.
//!
//! An import is one transaction into a store that must hold no state at all; any
//! problem leaves the target as it was. Exit codes: 65 the file is not a state file
//! (a bad header or line, which is named), 78 the configured store holds state
//! already (the wrong `--config`?), 75 the store failed, 74 standard input or output
//! could not be read or written.

use std::io::{BufRead, Write};
use std::path::Path;

use clap::Subcommand;

use super::build::with_store;
use super::{CliResult, exit, temp};
use crate::store::Store;
use crate::store::transfer::{FORMAT_VERSION, Header, Reader, Row, TransferError};

/// EX_IOERR (sysexits(3)): standard input or output failed.
const IOERR: u8 = 74;

/// What to do with the state.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Write the whole state store (settings, METADATA, Web Push subscriptions, Delta
    /// Chat tokens, the VAPID key, pending pushes) to standard output as JSON lines.
    /// Stop coid first: pushes queued after the export do not move.
    Export,
    /// Load a file written by coid state export from standard input into the
    /// configured store, in one transaction. Nothing is written, and coid exits 78, if
    /// that store holds any state already; or 65 if a line is not a row of a known
    /// format version (the line is named).
    Import,
}

/// Runs a `coid state` command.
pub fn run(config_path: &Path, action: StateAction) -> u8 {
    with_store(config_path, |_, store| match action {
        StateAction::Export => export(store, &mut std::io::stdout().lock()),
        StateAction::Import => import(store, std::io::stdin().lock()),
    })
}

/// Writes the header and every row to `out`.
fn export(store: &Store, out: &mut dyn Write) -> CliResult {
    let mut out = std::io::BufWriter::new(out);
    let header = Header {
        format: FORMAT_VERSION,
        schema: store.schema_version(),
        engine: store.kind().into(),
    };
    let mut rows = 0usize;
    let written = write_line(&mut out, &header).and_then(|()| {
        store.export(&mut |row: Row| {
            rows += 1;
            write_line(&mut out, &row)
        })
    });
    let written = written.and_then(|()| Ok(out.flush()?));
    written.map_err(|err| match err {
        TransferError::Io(err) => (IOERR, format!("cannot write the state: {err}")),
        other => temp(other),
    })?;
    eprintln!("coid: exported {rows} rows from {}", store.describe());
    Ok(())
}

/// One JSON line.
fn write_line(out: &mut impl Write, value: &impl serde::Serialize) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    Ok(out.write_all(b"\n")?)
}

/// Reads a state file from `input` into the store.
fn import(store: &Store, input: impl BufRead) -> CliResult {
    let (header, mut rows) = Reader::new(input).map_err(refusal)?;
    let stored = store.import(&mut rows).map_err(refusal)?;
    eprintln!(
        "coid: imported {stored} rows (exported from {} schema {}) into {}",
        header.engine,
        header.schema,
        store.describe()
    );
    Ok(())
}

/// The exit code and text of a failed import.
fn refusal(err: TransferError) -> (u8, String) {
    let code = match &err {
        TransferError::Header(_) | TransferError::BadLine { .. } => exit::DATAERR,
        TransferError::NotEmpty(_) => exit::CONFIG,
        TransferError::Io(_) => IOERR,
        TransferError::Store(_) => exit::TEMPFAIL,
    };
    (
        code,
        format!("state import refused, nothing written: {err}"),
    )
}
