//! The pipeline's combination and partial-failure logic with an in-memory backend:
//! one answer per recipient in RCPT order whatever the store says per copy, the policy's
//! verdicts next to delivered recipients, several copies of one recipient, copies the
//! backend never answered, and coid's own failures.

use super::*;
use crate::answer;
use crate::delivery::memory::{Behaviour, Memory};
use crate::delivery::{Permanent, Temporary};
use crate::lmtp::Recipient;
use crate::metrics::Recorder;
use crate::spool::SpoolWriter;

const MAIL: &[u8] = b"From: bob@example.net\r\nSubject: hi\r\n\r\nhello\r\n";

/// Rejects `reject@`, discards `drop@`, files `two@` into two folders (no INBOX copy)
/// and keeps everyone else.
const SCRIPT: &str = r#"require ["envelope", "reject", "fileinto", "copy"];
if envelope :localpart :is "to" "reject" { reject "not here"; stop; }
if envelope :localpart :is "to" "drop" { discard; stop; }
if envelope :localpart :is "to" "two" { fileinto :copy "A"; fileinto "B"; stop; }
"#;

struct Fixture {
    pipeline: Pipeline,
    backend: Arc<Memory>,
    dir: tempfile::TempDir,
}

fn fixture(backend: Memory) -> Fixture {
    fixture_with(backend, SCRIPT, 10_000, Recorder::off())
}

fn fixture_with(backend: Memory, script: &str, cpu_limit: usize, recorder: Recorder) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.sieve");
    std::fs::write(&path, script).expect("script");
    let store = Store::open(&dir.path().join("coid.sqlite")).expect("store");
    let policy = Policy::load(&path, cpu_limit).expect("policy");
    let backend = Arc::new(backend);
    let pipeline = Pipeline::new(&Config::default(), Arc::new(policy), store, backend.clone())
        .with_recorder(recorder);
    Fixture {
        pipeline,
        backend,
        dir,
    }
}

fn envelope(rcpts: &[&str]) -> Envelope {
    Envelope {
        mail_from: "bob@example.net".into(),
        recipients: rcpts.iter().map(|r| Recipient::new(*r)).collect(),
        ..Envelope::default()
    }
}

impl Fixture {
    async fn answers(&self, rcpts: &[&str]) -> Vec<Answer> {
        let mut writer = SpoolWriter::new(MAIL.len() + 1, self.dir.path());
        writer.write(MAIL).await.expect("spool");
        let body = writer.finish().await.expect("spooled");
        let (_, answers) = self.pipeline.answers(&envelope(rcpts), &body).await;
        assert_eq!(answers.len(), rcpts.len(), "one answer per recipient");
        answers.into_iter().collect()
    }
}

fn store(code: u16, enhanced: [u16; 3], text: &'static str) -> Reply {
    Reply::new(code, enhanced, text)
}

fn delivered() -> Answer {
    Answer::Delivery(Outcome::Delivered)
}

fn temporary(cause: Temporary) -> Answer {
    Answer::Delivery(Outcome::Temporary(cause))
}

#[tokio::test]
async fn each_recipient_gets_its_own_outcome_in_rcpt_order() {
    let no_user = store(550, [5, 1, 1], "User doesn't exist");
    let full = store(452, [4, 2, 2], "Mailbox is full");
    let backend = Memory::default()
        .answer("gone@x", Outcome::from_store(no_user.clone()))
        .answer("full@x", Outcome::from_store(full.clone()))
        .answer("down@x", Outcome::Temporary(Temporary::Broken));
    let f = fixture(backend);
    let rcpts = [
        "a@x", "gone@x", "reject@x", "full@x", "drop@x", "down@x", "b@x",
    ];
    let answers = f.answers(&rcpts).await;
    assert_eq!(
        answers,
        vec![
            delivered(),
            Answer::Delivery(Outcome::Permanent(Permanent::Store(no_user))),
            Answer::Rejected("not here".into()),
            temporary(Temporary::Store(full)),
            Answer::Discarded,
            temporary(Temporary::Broken),
            delivered(),
        ]
    );
    // Rejected and discarded recipients are never handed to the store.
    let stored: Vec<String> = f.backend.jobs().into_iter().map(|j| j.rcpt).collect();
    assert_eq!(stored, ["a@x", "gone@x", "full@x", "down@x", "b@x"]);
}

#[tokio::test]
async fn a_recipient_with_several_copies_is_delivered_only_if_every_copy_is() {
    // Both copies stored.
    let f = fixture(Memory::default());
    assert_eq!(f.answers(&["two@x"]).await, vec![delivered()]);
    let folders: Vec<Option<String>> = f
        .backend
        .jobs()
        .into_iter()
        .map(|j| j.target.folder)
        .collect();
    assert_eq!(folders, [Some("A".to_owned()), Some("B".to_owned())]);

    // One copy refused for good, one stored: the refusal stands.
    let refused = Outcome::Permanent(Permanent::BadMailbox);
    let f = fixture(Memory::default().on("two@x", Some("B"), Behaviour::Answer(refused.clone())));
    assert_eq!(
        f.answers(&["two@x", "a@x"]).await,
        vec![Answer::Delivery(refused.clone()), delivered()]
    );

    // One refused, one temporarily failed: retrying wins over bouncing.
    let f = fixture(
        Memory::default()
            .on("two@x", Some("A"), Behaviour::Answer(refused))
            .on(
                "two@x",
                Some("B"),
                Behaviour::Answer(Outcome::Temporary(Temporary::Unreachable)),
            ),
    );
    assert_eq!(
        f.answers(&["two@x"]).await,
        vec![temporary(Temporary::Unreachable)]
    );
}

#[tokio::test]
async fn a_copy_the_backend_never_answered_is_never_delivered() {
    let f = fixture(Memory::default().on("quiet@x", None, Behaviour::Silent).on(
        "two@x",
        Some("A"),
        Behaviour::Silent,
    ));
    let answers = f.answers(&["a@x", "quiet@x", "two@x"]).await;
    assert_eq!(
        answers,
        vec![
            delivered(),
            temporary(Temporary::NotAnswered),
            temporary(Temporary::NotAnswered)
        ]
    );
    let replies: Vec<String> = answers
        .iter()
        .map(|a| answer::reply(a).to_string())
        .collect();
    assert_eq!(
        replies,
        [
            "250 2.0.0 Delivered",
            "451 4.3.0 Temporary failure, try again later",
            "451 4.3.0 Temporary failure, try again later",
        ]
    );
}

#[tokio::test]
async fn a_store_that_is_gone_defers_every_delivered_recipient_but_not_the_policys_verdicts() {
    let f = fixture(Memory::default().failing(Temporary::Unreachable));
    let answers = f.answers(&["a@x", "reject@x", "drop@x", "two@x"]).await;
    assert_eq!(
        answers,
        vec![
            temporary(Temporary::Unreachable),
            Answer::Rejected("not here".into()),
            Answer::Discarded,
            temporary(Temporary::Unreachable),
        ]
    );
}

#[tokio::test]
async fn coids_own_failure_defers_every_recipient_and_stores_nothing() {
    let f = fixture(Memory::default());
    // The spool file vanished before the pipeline read it back.
    let mut writer = SpoolWriter::new(0, f.dir.path());
    writer.write(MAIL).await.expect("spool");
    let body = writer.finish().await.expect("spooled");
    if let Spooled::File { temp, .. } = &body {
        std::fs::remove_file(temp.path()).expect("remove the spool file");
    } else {
        panic!("threshold 0 spools to a file");
    }
    let rcpts = ["a@x", "reject@x", "b@x"];
    let (class, answers) = f.pipeline.answers(&envelope(&rcpts), &body).await;
    assert_eq!(class, None);
    assert_eq!(
        answers.as_slice(),
        [
            Answer::Own(Own::Spool),
            Answer::Own(Own::Spool),
            Answer::Own(Own::Spool)
        ]
    );
    assert!(f.backend.jobs().is_empty());
    let (replies, _) = f.pipeline.process(&envelope(&rcpts), &body).await;
    assert!(
        replies
            .iter()
            .all(|r| r.to_string() == "451 4.3.0 Temporary failure, try again later"),
        "{replies:?}"
    );
}

/// The value of the sample `series` in `recorder`'s exposition.
fn sample(recorder: &Recorder, series: &str) -> Option<f64> {
    let text = recorder.encode().expect("encodes");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn the_pipeline_counts_each_recipient_by_its_reply_class() {
    let recorder = Recorder::new();
    let backend = Memory::default()
        .answer("gone@x", Outcome::Permanent(Permanent::BadMailbox))
        .answer("down@x", Outcome::Temporary(Temporary::Broken));
    let f = fixture_with(backend, SCRIPT, 10_000, recorder.clone());
    let rcpts = ["a@x", "reject@x", "gone@x", "down@x", "drop@x"];
    let mut writer = SpoolWriter::new(MAIL.len() + 1, f.dir.path());
    writer.write(MAIL).await.expect("spool");
    let body = writer.finish().await.expect("spooled");
    let (replies, _) = f.pipeline.process(&envelope(&rcpts), &body).await;
    assert_eq!(replies.len(), rcpts.len());
    let d =
        |outcome: &str| format!(r#"coid_deliveries_total{{class="email",outcome="{outcome}"}}"#);
    assert_eq!(
        sample(&recorder, r#"coid_messages_total{class="email"}"#),
        Some(1.0)
    );
    // a@x and the discard are 2xx, the reject and the bad mailbox 5xx, down@x 4xx.
    assert_eq!(sample(&recorder, &d("delivered")), Some(2.0));
    assert_eq!(sample(&recorder, &d("rejected")), Some(2.0));
    assert_eq!(sample(&recorder, &d("deferred")), Some(1.0));
    assert_eq!(sample(&recorder, "coid_policy_errors_total"), Some(0.0));
}

#[tokio::test]
async fn a_policy_failure_is_counted_by_the_pipeline_not_the_policy() {
    let script = "require [\"variables\", \"fileinto\"];\n\
        set \"a\" \"x\";\n\
        if string :matches \"${a}${a}${a}${a}\" \"*x*x*x*x*\" { fileinto \"Spam\"; }\n\
        if string :matches \"${a}${a}${a}${a}\" \"*x*x*x*x*\" { fileinto \"Spam\"; }\n";
    let recorder = Recorder::new();
    let f = fixture_with(Memory::default(), script, 3, recorder.clone());
    assert_eq!(
        f.answers(&["a@x", "b@x"]).await,
        vec![delivered(), delivered()]
    );
    assert_eq!(sample(&recorder, "coid_policy_errors_total"), Some(2.0));
}
