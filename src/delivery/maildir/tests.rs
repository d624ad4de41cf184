//! Maildir backend behaviour on a real file system: INBOX and folder delivery,
//! keywords, subscriptions, fallbacks, path escapes and I/O failures.

use super::*;
use crate::lmtp::Envelope;
use crate::policy::Target;

const MAIL: &[u8] = b"From: a@x\r\nX-Coid-Folder: COI/Chats\r\nSubject: hi\r\n\r\nbody\r\n";

fn job(local: &str, folder: Option<&str>, flags: &[&str], create: bool) -> Job {
    let user = UserAddress {
        local: local.into(),
        domain: "example.org".into(),
        username: format!("{local}@example.org"),
    };
    let flags = flags.iter().map(|f| (*f).to_owned()).collect();
    let target = Target {
        folder: folder.map(str::to_owned),
        flags,
        create,
    };
    Job {
        rcpt: format!("{local}@example.org"),
        user,
        target,
    }
}

const SAVED: Outcome = Outcome::Delivered;
const BAD_MAILBOX: Outcome = Outcome::Permanent(Permanent::BadMailbox);
const LOCAL_FAILURE: Outcome = Outcome::Temporary(Temporary::Local);

async fn run(state: &Path, template: &str, jobs: &[Job]) -> Vec<Outcome> {
    let maildir = Maildir::new(
        &MaildirConfig {
            path: template.into(),
            fsync: true,
        },
        state,
    );
    let (envelope, body) = (Envelope::default(), Spooled::Memory(MAIL.to_vec()));
    let mut copies: Vec<Delivery> = jobs.iter().cloned().map(Delivery::new).collect();
    maildir
        .deliver(
            &Message {
                envelope: &envelope,
                body: &body,
            },
            &mut copies,
        )
        .await;
    copies.into_iter().map(|c| c.outcome).collect()
}

/// The single file in `dir`.
fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().expect("one file")
}

const TEMPLATE: &str = "mail/{domain}/{local}/Maildir";

#[tokio::test]
async fn inbox_lands_in_new_with_lf_and_without_trusted_headers() {
    let state = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        run(state.path(), TEMPLATE, &[job("alice", None, &[], false)]).await,
        [SAVED]
    );
    let root = state.path().join("mail/example.org/alice/Maildir");
    let file = only_file(&root.join("new"));
    let content = fs::read(&file).expect("read");
    assert_eq!(content, b"From: a@x\nSubject: hi\n\nbody\n");
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    assert!(name.ends_with(&format!(",S={}", content.len())), "{name}");
    assert!(
        fs::read_dir(root.join("tmp"))
            .expect("tmp")
            .next()
            .is_none()
    );
}

#[tokio::test]
async fn chat_folder_is_created_subscribed_and_flagged() {
    let state = tempfile::tempdir().expect("tempdir");
    let jobs = [
        job("bob", Some("COI/Chats"), &["$Chat"], true),
        job("bob", None, &["\\Seen"], false),
    ];
    assert_eq!(run(state.path(), TEMPLATE, &jobs).await, [SAVED, SAVED]);
    let root = state.path().join("mail/example.org/bob/Maildir");
    let folder = root.join(".COI.Chats");
    for sub in ["cur", "new", "tmp"] {
        assert!(folder.join(sub).is_dir(), "{sub}");
    }
    assert_eq!(
        fs::read(folder.join("maildirfolder")).expect("maildirfolder"),
        b""
    );
    assert_eq!(
        fs::read_to_string(folder.join(dovecot_files::KEYWORDS_FILE)).expect("keywords"),
        "0 $Chat\n"
    );
    assert!(
        only_file(&folder.join("cur"))
            .to_string_lossy()
            .ends_with(":2,a")
    );
    assert_eq!(
        fs::read(root.join("subscriptions")).expect("subscriptions"),
        b"V\t2\n\nCOI\tChats\n"
    );
    assert!(
        only_file(&root.join("cur"))
            .to_string_lossy()
            .ends_with(":2,S")
    );
    // A second chat reuses the keyword and leaves the subscription alone.
    let jobs = [job("bob", Some("COI/Chats"), &["$Chat", "\\Seen"], true)];
    assert_eq!(run(state.path(), TEMPLATE, &jobs).await, [SAVED]);
    assert_eq!(fs::read_dir(folder.join("cur")).expect("cur").count(), 2);
    assert_eq!(
        fs::read(root.join("subscriptions")).expect("subscriptions"),
        b"V\t2\n\nCOI\tChats\n"
    );
}

#[tokio::test]
async fn missing_folder_without_create_goes_to_inbox() {
    let state = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        run(
            state.path(),
            TEMPLATE,
            &[job("carol", Some("Lists"), &[], false)]
        )
        .await,
        [SAVED]
    );
    let root = state.path().join("mail/example.org/carol/Maildir");
    assert!(!root.join(".Lists").exists());
    only_file(&root.join("new"));
}

#[tokio::test]
async fn path_escape_is_refused_and_writes_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let replies = run(
        state.path(),
        TEMPLATE,
        &[job("../x", None, &[], false), job(".", None, &[], false)],
    )
    .await;
    assert_eq!(replies, [BAD_MAILBOX, BAD_MAILBOX]);
    assert!(fs::read_dir(state.path()).expect("state").next().is_none());
}

#[tokio::test]
async fn unwritable_store_is_a_temporary_failure() {
    use std::os::unix::fs::PermissionsExt;
    let state = tempfile::tempdir().expect("tempdir");
    let locked = state.path().join("locked");
    fs::create_dir(&locked).expect("mkdir");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o500)).expect("chmod");
    let template = if fs::write(locked.join("probe"), b"").is_ok() {
        // Running as root: permission bits do not stop writes; block with a file.
        fs::write(state.path().join("file"), b"").expect("file");
        "file/{local}"
    } else {
        "locked/{local}"
    };
    let replies = run(state.path(), template, &[job("dave", None, &[], false)]).await;
    assert_eq!(replies, [LOCAL_FAILURE]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod back");
}

#[test]
fn folder_names_are_checked_and_encoded() {
    assert_eq!(
        folder_parts(Some("COI/Chats"), "r"),
        Some(vec!["COI".into(), "Chats".into()])
    );
    assert_eq!(folder_parts(Some("inbox"), "r"), None);
    for bad in ["a//b", "a.b", "/a", "a\tb"] {
        assert_eq!(folder_parts(Some(bad), "r"), None, "{bad}");
    }
    // Each level is encoded on its own (the encoding itself: `dovecot_files`).
    assert_eq!(
        folder_parts(Some("Chäts/R&D"), "r"),
        Some(vec!["Ch&AOQ-ts".into(), "R&-D".into()])
    );
}
