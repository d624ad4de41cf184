//! METADATA test support: Dovecot set up with coid's shipped METADATA snippet and a
//! coid serving its dict socket, METADATA commands over the raw IMAP client (and the
//! COI config entries a client sets), and a raw client for the dict protocol itself.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use tempfile::TempDir;

use super::coid::{Coid, CoidOpts};
use super::raw_imap::{Token, literal_plus};
use super::stack::with_coid_metadata;
use super::{Dovecot, DovecotOpts, Imap, make_run_dir};

/// One METADATA entry as listed: name and value (`None` for NIL).
pub type Entry = (String, Option<String>);

/// The COI config entries' parent.
pub const COI_CONFIG: &str = "/private/vendor/vendor.dovecot/coi/config";
/// COI on or off for the user.
pub const COI_ENABLED: &str = "/private/vendor/vendor.dovecot/coi/config/enabled";
/// The user's message filter (`none`, `active`, `seen`).
pub const COI_FILTER: &str = "/private/vendor/vendor.dovecot/coi/config/message-filter";
/// The read-only root of the COI folders.
pub const COI_ROOT: &str = "/private/vendor/vendor.dovecot/coi/config/mailbox-root";

/// Dovecot whose METADATA goes to coid, and that coid.
pub struct Setup {
    pub coid: Coid,
    pub dovecot: Dovecot,
    _dir: TempDir,
}

/// A directory for the dict socket both sides are configured with.
pub fn socket_dir() -> (TempDir, PathBuf) {
    let dir = make_run_dir("coid-dict-");
    let socket = dir.path().join("dict.sock");
    (dir, socket)
}

/// Dovecot (default users) and coid, wired through the dict socket.
pub fn setup() -> Setup {
    let (dir, socket) = socket_dir();
    let dovecot = Dovecot::start(with_coid_metadata(DovecotOpts::default(), &socket));
    let mut opts = CoidOpts::dovecot(&dovecot.lmtp_socket().display().to_string());
    opts.dict_socket = Some(socket);
    Setup {
        coid: Coid::start(opts),
        dovecot,
        _dir: dir,
    }
}

/// Runs a METADATA command; returns (status, tagged text, the entries it listed).
pub fn metadata(imap: &mut Imap, command: &str) -> (String, String, Vec<Entry>) {
    let response = imap
        .raw_response(command)
        .unwrap_or_else(|e| panic!("{command}: {e}"));
    let mut entries = Vec::new();
    for untagged in &response.untagged {
        let Some(open) = untagged.tokens.iter().position(|t| *t == Token::Open) else {
            continue;
        };
        let mut rest = untagged.tokens.get(open + 1..).unwrap_or_default().iter();
        while let (Some(Token::Atom(entry)), Some(value)) = (rest.next(), rest.next()) {
            entries.push((entry.clone(), value.value()));
        }
    }
    (response.status, response.text, entries)
}

/// SETMETADATA that must succeed.
pub fn set_ok(imap: &mut Imap, mailbox: &str, pairs: &[(&str, Option<&str>)]) {
    let (status, text) = set(imap, mailbox, pairs);
    assert_eq!(status, "OK", "SETMETADATA {pairs:?}: {text}");
}

/// COI on with message filter `filter`, as a COI client sets it (must succeed).
pub fn set_coi(imap: &mut Imap, filter: &str) {
    set_ok(
        imap,
        "",
        &[(COI_ENABLED, Some("yes")), (COI_FILTER, Some(filter))],
    );
}

/// SETMETADATA (`None` values are NIL); returns (status, tagged text).
pub fn set(imap: &mut Imap, mailbox: &str, pairs: &[(&str, Option<&str>)]) -> (String, String) {
    let list: Vec<String> = pairs
        .iter()
        .map(|(entry, value)| format!("{entry} {}", value.map_or("NIL".into(), literal_plus)))
        .collect();
    let command = format!("SETMETADATA \"{mailbox}\" ({})", list.join(" "));
    let (status, text, _) = metadata(imap, &command);
    (status, text)
}

/// GETMETADATA that must succeed; the entries it listed.
pub fn get(imap: &mut Imap, mailbox: &str, entries: &[&str]) -> Vec<Entry> {
    let command = format!("GETMETADATA \"{mailbox}\" ({})", entries.join(" "));
    let (status, text, found) = metadata(imap, &command);
    assert_eq!(status, "OK", "{command}: {text}");
    found
}

/// An expected entry.
pub fn pair(entry: &str, value: Option<&str>) -> Entry {
    (entry.to_owned(), value.map(str::to_owned))
}

/// What coid's own CLI says about the user (proves the value is in coid's store).
pub fn coid_user_get(coid: &Coid, user: &str) -> String {
    let (code, out, err) = coid.cli(&["user", "get", user], None);
    assert_eq!(code, 0, "{err}");
    out
}

/// Talks the dict protocol to coid's socket directly.
pub struct DictClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl DictClient {
    /// Connects to `coid`'s dict socket.
    pub fn connect(coid: &Coid) -> DictClient {
        let stream =
            UnixStream::connect(coid.dict_socket_path()).expect("connect to coid's dict socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        DictClient {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// One reply line without its LF; `None` when coid closed the connection.
    pub fn line(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).expect("read");
        (n > 0).then(|| {
            line.pop();
            line
        })
    }
}
