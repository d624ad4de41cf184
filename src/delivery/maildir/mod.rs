//! The embedded store: delivery straight into users' Maildir++ folders, laid out the
//! way Dovecot reads them, for hosts without Dovecot LMTP (and for tests).
//!
//! This file holds the Maildir side: user and folder paths, streaming the body into
//! `tmp/`, and the rename into place. Follows the Maildir spec (cr.yp.to/proto/maildir.html):
//! write `tmp/<unique>`, then rename into `new/` (no flags) or `cur/<unique>:2,<letters>`
//! (flags). Folders are Maildir++ (`COI/Chats` → `.COI.Chats` with a `maildirfolder` file).
//! The files Dovecot shares with us (`dovecot-keywords`, `subscriptions`, their dotlocks,
//! modified UTF-7 names) live in `dovecot_files.rs`, which follows Dovecot's formats.
//! Our own trouble is 4xx; the only 5xx is a recipient whose name would escape the tree.

mod dovecot_files;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::{HeaderFilter, LfLines, Transform};
use super::{Backend, BoxFuture, Delivery, Job, Message, Outcome, Permanent, Temporary};
use crate::config::MaildirConfig;
use crate::metrics::{BackendError, Recorder};
use crate::spool::Spooled;
use crate::users::UserAddress;
use dovecot_files::{keyword_letters, mutf7};

const CHUNK: usize = 64 * 1024;

/// Per-process counter for unique names (the `Q` part).
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Why one copy could not be stored.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A recipient part that would leave the mail tree.
    #[error("invalid mailbox name part {0:?}")]
    BadName(String),
    /// A file system call failed (disk full, permissions): 4xx, the MTA retries.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Another process held a dotlock for too long.
    #[error("{0}: still locked")]
    Locked(PathBuf),
    /// A blocking file task panicked.
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Its `coid_backend_errors_total` kind.
    fn kind(&self) -> BackendError {
        match self {
            Error::BadName(_) => BackendError::Refused,
            Error::Io { .. } => BackendError::Io,
            Error::Locked(_) => BackendError::Locked,
            Error::Join(_) => BackendError::Task,
        }
    }
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// The Maildir++ backend.
#[derive(Debug, Clone)]
pub struct Maildir {
    template: String,
    state_dir: PathBuf,
    fsync: bool,
    /// Host name for unique names, with `/` and `:` escaped as Dovecot does.
    host: String,
    recorder: Recorder,
}

/// Flags split into Maildir info letters and keywords.
#[derive(Debug, Default)]
struct Flags {
    system: Vec<u8>,
    keywords: Vec<String>,
}

/// A folder ready to take a message, and the info letters for it.
struct Dest {
    dir: PathBuf,
    info: String,
}

impl Maildir {
    /// From `[delivery.maildir]`; relative paths are under `state_dir`.
    pub fn new(config: &MaildirConfig, state_dir: &Path) -> Maildir {
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let host = host
            .replace('/', "\\057")
            .replace(':', "\\072")
            .replace(',', "\\054");
        Maildir {
            template: config.path.clone(),
            state_dir: state_dir.to_owned(),
            fsync: config.fsync,
            host,
            recorder: Recorder::off(),
        }
    }

    /// Counts failures in `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Maildir {
        self.recorder = recorder;
        self
    }

    /// The user's Maildir root; each placeholder value must stay one path component.
    fn root_for(&self, user: &UserAddress) -> Result<PathBuf, Error> {
        let mut path = self.template.clone();
        for (key, value) in [
            ("{domain}", &user.domain),
            ("{local}", &user.local),
            ("{user}", &user.username),
        ] {
            if path.contains(key) {
                if value.is_empty()
                    || value.starts_with('.')
                    || value.chars().any(|c| c == '/' || c.is_control())
                {
                    return Err(Error::BadName(value.clone()));
                }
                path = path.replace(key, value);
            }
        }
        // `join` keeps an absolute path as it is.
        Ok(self.state_dir.join(path))
    }

    /// `<secs>.M<micros>P<pid>Q<counter>.<host>` (Dovecot's form).
    fn unique(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let q = SEQ.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{q}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.host
        )
    }

    async fn deliver_one(&self, body: &Spooled, job: &Job) -> Outcome {
        match self.store(body, job).await {
            Ok(path) => {
                tracing::debug!(rcpt = %job.rcpt, path = %path.display(), "saved to maildir");
                Outcome::Delivered
            }
            Err(error @ Error::BadName(_)) => {
                tracing::warn!(rcpt = %job.rcpt, %error, "refused recipient");
                self.recorder.backend_error(error.kind());
                Outcome::Permanent(Permanent::BadMailbox)
            }
            Err(error) => {
                tracing::error!(rcpt = %job.rcpt, %error, "maildir delivery failed");
                self.recorder.backend_error(error.kind());
                Outcome::Temporary(Temporary::Local)
            }
        }
    }

    async fn store(&self, body: &Spooled, job: &Job) -> Result<PathBuf, Error> {
        let root = self.root_for(&job.user)?;
        let folder = folder_parts(job.target.folder.as_deref(), &job.rcpt);
        let flags = parse_flags(&job.target.flags, &job.rcpt);
        let (create, fsync, rcpt) = (job.target.create, self.fsync, job.rcpt.clone());
        let dest = blocking(move || prepare(&root, folder.as_deref(), create, flags, fsync, &rcpt))
            .await?;
        let base = self.unique();
        let tmp = dest.dir.join("tmp").join(&base);
        let result = async {
            let (size, tmp) = (write_tmp(&tmp, body, fsync).await?, tmp.clone());
            blocking(move || commit(&tmp, &dest, &base, size, fsync)).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

impl Backend for Maildir {
    fn deliver<'a>(
        &'a self,
        message: &'a Message<'a>,
        copies: &'a mut [Delivery],
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for copy in copies {
                copy.outcome = self.deliver_one(message.body, &copy.job).await;
            }
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await?
}

/// Folder name → encoded Maildir++ levels; `None` for INBOX or an invalid name.
fn folder_parts(folder: Option<&str>, rcpt: &str) -> Option<Vec<String>> {
    let folder = folder.filter(|f| !f.eq_ignore_ascii_case("INBOX"))?;
    let valid =
        |p: &str| !p.is_empty() && !p.chars().any(|c| c == '.' || c == '/' || c.is_control());
    if folder.split('/').all(valid) {
        return Some(folder.split('/').map(mutf7).collect());
    }
    tracing::warn!(rcpt, folder, "invalid folder name, delivering to INBOX");
    None
}

/// IMAP flags → Maildir letters (D F R S T) and keywords (RFC 3501 atoms).
fn parse_flags(flags: &[String], rcpt: &str) -> Flags {
    let mut out = Flags::default();
    for flag in flags {
        if let Some(name) = flag.strip_prefix('\\') {
            match name.to_ascii_lowercase().as_str() {
                "draft" => out.system.push(b'D'),
                "flagged" => out.system.push(b'F'),
                "answered" => out.system.push(b'R'),
                "seen" => out.system.push(b'S'),
                "deleted" => out.system.push(b'T'),
                _ => tracing::warn!(rcpt, flag, "ignoring unknown system flag"),
            }
        } else if !flag.is_empty()
            && flag
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
        {
            if !out.keywords.iter().any(|k| k.eq_ignore_ascii_case(flag)) {
                out.keywords.push(flag.clone());
            }
        } else {
            tracing::warn!(rcpt, flag, "ignoring invalid keyword");
        }
    }
    out
}

/// Makes the root and target folder ready; falls back to INBOX for a missing folder
/// without `:create` (as Pigeonhole does).
fn prepare(
    root: &Path,
    folder: Option<&[String]>,
    create: bool,
    flags: Flags,
    fsync: bool,
    rcpt: &str,
) -> Result<Dest, Error> {
    ensure_maildir(root, fsync)?;
    let dir = match folder {
        None => root.to_owned(),
        Some(parts) => {
            let dir = root.join(format!(".{}", parts.join(".")));
            if dir.is_dir() {
                ensure_maildir(&dir, fsync)?;
                dir
            } else if create {
                create_folder(root, &dir, parts, fsync)?;
                dir
            } else {
                tracing::warn!(rcpt, folder = %parts.join("/"), "folder missing and no :create, delivering to INBOX");
                root.to_owned()
            }
        }
    };
    let mut info = flags.system;
    info.extend(keyword_letters(&dir, &flags.keywords, rcpt, fsync)?);
    info.sort_unstable();
    info.dedup();
    Ok(Dest {
        dir,
        info: String::from_utf8_lossy(&info).into_owned(),
    })
}

/// Creates `cur`, `new` and `tmp` (mode 0700) if missing.
fn ensure_maildir(dir: &Path, fsync: bool) -> Result<(), Error> {
    if ["cur", "new", "tmp"]
        .iter()
        .all(|sub| dir.join(sub).is_dir())
    {
        return Ok(());
    }
    for sub in ["cur", "new", "tmp"] {
        let path = dir.join(sub);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(at(&path))?;
    }
    if fsync {
        sync_dir(dir)?;
        dir.parent().map(sync_dir).transpose()?;
    }
    Ok(())
}

/// A new Maildir++ folder: the directories, `maildirfolder`, and a subscription.
fn create_folder(root: &Path, dir: &Path, parts: &[String], fsync: bool) -> Result<(), Error> {
    ensure_maildir(dir, fsync)?;
    let marker = dir.join("maildirfolder");
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&marker)
        .map_err(at(&marker))?;
    dovecot_files::subscribe(root, parts, fsync)
}

/// Streams the body through the header filter and CRLF → LF into `path`; returns its size.
async fn write_tmp(path: &Path, body: &Spooled, fsync: bool) -> Result<u64, Error> {
    let mut reader = body.reader().await.map_err(at(Path::new("<spool>")))?;
    let mut options = tokio::fs::OpenOptions::new();
    let mut file = options
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await
        .map_err(at(path))?;
    let (mut filter, mut lf) = (HeaderFilter::new(), LfLines::default());
    let (mut buf, mut mid, mut out) = (vec![0u8; CHUNK], Vec::new(), Vec::new());
    let mut size = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(at(Path::new("<spool>")))?;
        mid.clear();
        out.clear();
        if n == 0 {
            filter.finish(&mut mid);
            lf.push(&mid, &mut out);
            lf.finish(&mut out);
        } else {
            filter.push(buf.get(..n).unwrap_or_default(), &mut mid);
            lf.push(&mid, &mut out);
        }
        file.write_all(&out).await.map_err(at(path))?;
        size += out.len() as u64;
        if n == 0 {
            break;
        }
    }
    file.flush().await.map_err(at(path))?;
    if fsync {
        file.sync_all().await.map_err(at(path))?;
    }
    Ok(size)
}

/// Moves the written file into `new/` or, with flags, `cur/` (Maildir spec).
fn commit(tmp: &Path, dest: &Dest, base: &str, size: u64, fsync: bool) -> Result<PathBuf, Error> {
    let (sub, name) = match dest.info.is_empty() {
        true => ("new", format!("{base},S={size}")),
        false => ("cur", format!("{base},S={size}:2,{}", dest.info)),
    };
    let target = dest.dir.join(sub).join(name);
    fs::rename(tmp, &target).map_err(at(&target))?;
    if fsync {
        sync_dir(&dest.dir.join(sub))?;
        sync_dir(&dest.dir.join("tmp"))?;
    }
    Ok(target)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

#[cfg(test)]
mod tests;
