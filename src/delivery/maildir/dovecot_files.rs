//! Dovecot's shared per-mailbox files, kept apart from the Maildir backend in `mod.rs` because
//! they follow Dovecot's formats rather than the Maildir spec, and Dovecot writes them too.
//!
//! Keywords use `dovecot-keywords` (`<index> <name>` per line, index 0 → letter `a`, at most
//! 26); new folders go into `subscriptions` (Dovecot's version 2 format: `V\t2\n\n`, then one
//! name per line with TAB between hierarchy levels). Both files are rewritten under Dovecot's
//! dotlock (`<file>.lock`, created exclusively, filled, renamed over the file), so Dovecot and
//! coid can share them. Folder names on disk are modified UTF-7 (RFC 3501 §5.1.3).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Error, at, sync_dir};

pub(super) const KEYWORDS_FILE: &str = "dovecot-keywords";
const MAX_KEYWORDS: u8 = 26;
const SUBSCRIPTIONS_V2: &[u8] = b"V\t2\n\n";
/// Dotlock retries (100 ms apart) and the age after which a lock is stale (Dovecot: 30 s).
const LOCK_TRIES: u32 = 50;
const LOCK_STALE: Duration = Duration::from_secs(30);
/// Base64 alphabet of modified UTF-7 (RFC 3501 §5.1.3: `,` instead of `/`).
const MUTF7_B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Modified UTF-7 (RFC 3501 §5.1.3), as Dovecot names folders on disk.
pub(super) fn mutf7(name: &str) -> String {
    let mut out = String::new();
    let mut wide: Vec<u16> = Vec::new();
    for c in name.chars().chain(std::iter::once('\0')) {
        if !(' '..='~').contains(&c) && c != '\0' {
            wide.extend_from_slice(c.encode_utf16(&mut [0; 2]));
            continue;
        }
        if !wide.is_empty() {
            let bytes: Vec<u8> = wide.drain(..).flat_map(u16::to_be_bytes).collect();
            out.push('&');
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .zip([16, 8, 0])
                    .fold(0u32, |acc, (b, s)| acc | u32::from(*b) << s);
                for shift in [18, 12, 6, 0].into_iter().take(chunk.len() + 1) {
                    out.extend(
                        MUTF7_B64
                            .get(((n >> shift) & 63) as usize)
                            .map(|&b| char::from(b)),
                    );
                }
            }
            out.push('-');
        }
        match c {
            '&' => out.push_str("&-"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out
}

/// Adds the folder `parts` (encoded Maildir++ levels) to `root`'s `subscriptions`.
pub(super) fn subscribe(root: &Path, parts: &[String], fsync: bool) -> Result<(), Error> {
    let joined = |sep: &str| parts.join(sep).into_bytes();
    update_locked(&root.join("subscriptions"), fsync, |old| {
        // A file without the v2 header is version 1: names use the storage separator.
        let (line, mut out) = match old.starts_with(SUBSCRIPTIONS_V2) || old.is_empty() {
            true => (
                joined("\t"),
                if old.is_empty() {
                    SUBSCRIPTIONS_V2.to_vec()
                } else {
                    old.to_vec()
                },
            ),
            false => (joined("."), old.to_vec()),
        };
        if old.split(|&b| b == b'\n').any(|l| l == line) {
            return None;
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
        Some(out)
    })
}

/// Letters for `keywords` in `dir`'s `dovecot-keywords`, adding those not yet listed.
pub(super) fn keyword_letters(
    dir: &Path,
    keywords: &[String],
    rcpt: &str,
    fsync: bool,
) -> Result<Vec<u8>, Error> {
    if keywords.is_empty() {
        return Ok(Vec::new());
    }
    let mut letters = Vec::new();
    update_locked(&dir.join(KEYWORDS_FILE), fsync, |old| {
        let mut table: Vec<(u8, String)> = String::from_utf8_lossy(old)
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .and_then(|(i, k)| Some((i.parse().ok()?, k.to_owned())))
            })
            .filter(|(i, k)| *i < MAX_KEYWORDS && !k.is_empty())
            .collect();
        let before = table.len();
        for keyword in keywords {
            let index = table
                .iter()
                .find(|(_, k)| k.eq_ignore_ascii_case(keyword))
                .map(|(i, _)| *i);
            let index = index.or_else(|| {
                let free = (0..MAX_KEYWORDS).find(|i| table.iter().all(|(j, _)| j != i))?;
                table.push((free, keyword.clone()));
                Some(free)
            });
            match index {
                Some(i) => letters.push(b'a' + i),
                None => tracing::warn!(rcpt, keyword, "26 keywords in use, keyword dropped"),
            }
        }
        table.sort_unstable();
        (table.len() != before).then(|| {
            table
                .iter()
                .flat_map(|(i, k)| format!("{i} {k}\n").into_bytes())
                .collect()
        })
    })?;
    Ok(letters)
}

/// Rewrites `path` under Dovecot's dotlock; `edit` gets the old content and returns the
/// new one, or `None` to leave the file alone.
fn update_locked(
    path: &Path,
    fsync: bool,
    edit: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
) -> Result<(), Error> {
    let mut lock_name = path.as_os_str().to_owned();
    lock_name.push(".lock");
    let lock = PathBuf::from(lock_name);
    let mut file = acquire(&lock)?;
    let result = (|| {
        let old = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(at(path)(e)),
        };
        let Some(new) = edit(&old) else {
            return fs::remove_file(&lock).map_err(at(&lock));
        };
        file.write_all(&new).map_err(at(&lock))?;
        if fsync {
            file.sync_all().map_err(at(&lock))?;
        }
        fs::rename(&lock, path).map_err(at(path))?;
        if fsync {
            path.parent().map(sync_dir).transpose().map(drop)
        } else {
            Ok(())
        }
    })();
    if result.is_err() {
        let _ = fs::remove_file(&lock);
    }
    result
}

fn acquire(lock: &Path) -> Result<File, Error> {
    for _ in 0..LOCK_TRIES {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(lock)
        {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let age = fs::metadata(lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|age| age > LOCK_STALE) {
                    let _ = fs::remove_file(lock);
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => return Err(at(lock)(e)),
        }
    }
    Err(Error::Locked(lock.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_names_are_modified_utf7() {
        // Examples from RFC 3501 §5.1.3 and what Dovecot 2.3 writes.
        assert_eq!(mutf7("Chäts"), "Ch&AOQ-ts");
        assert_eq!(mutf7("R&D"), "R&-D");
        assert_eq!(
            mutf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
    }

    fn parts(folder: &str) -> Vec<String> {
        folder.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn subscriptions_keep_their_version_and_skip_duplicates() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("subscriptions");
        subscribe(root.path(), &parts("COI/Chats"), false).expect("subscribe");
        subscribe(root.path(), &parts("COI/Chats"), false).expect("again");
        subscribe(root.path(), &parts("Lists"), false).expect("second folder");
        assert_eq!(
            fs::read(&file).expect("read"),
            b"V\t2\n\nCOI\tChats\nLists\n"
        );
        // Version 1 (no header, maybe no final newline): names joined with `.`.
        fs::write(&file, b"Sent").expect("write v1");
        subscribe(root.path(), &parts("COI/Chats"), false).expect("v1");
        assert_eq!(fs::read(&file).expect("read"), b"Sent\nCOI.Chats\n");
        assert!(!root.path().join("subscriptions.lock").exists());
    }

    #[test]
    fn keywords_reuse_free_slots_and_stop_at_26() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(KEYWORDS_FILE);
        fs::write(&file, "2 $Chat\nbogus\n30 $TooHigh\n").expect("write");
        let words = |w: &[&str]| w.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        let letters = keyword_letters(dir.path(), &words(&["$chat", "$New"]), "r", false);
        assert_eq!(letters.expect("letters"), b"ca");
        assert_eq!(
            fs::read_to_string(&file).expect("read"),
            "0 $New\n2 $Chat\n"
        );
        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        let letters = keyword_letters(dir.path(), &many, "r", false).expect("many");
        assert_eq!(letters.len(), 24);
        assert_eq!(fs::read_to_string(&file).expect("read").lines().count(), 26);
        assert!(!dir.path().join("dovecot-keywords.lock").exists());
    }

    #[test]
    fn stale_lock_is_broken_and_unchanged_file_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, lock) = (dir.path().join("f"), dir.path().join("f.lock"));
        fs::write(&path, b"old").expect("write");
        let stale = File::create(&lock).expect("lock");
        let past = std::time::SystemTime::now() - LOCK_STALE - Duration::from_secs(5);
        stale.set_modified(past).expect("age the lock");
        update_locked(&path, true, |old| Some([old, b"+new"].concat())).expect("update");
        assert_eq!(fs::read(&path).expect("read"), b"old+new");
        assert!(!lock.exists());
        update_locked(&path, false, |_| None).expect("no change");
        assert_eq!(fs::read(&path).expect("read"), b"old+new");
        assert!(!lock.exists());
    }
}
