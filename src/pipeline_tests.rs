//! The pipeline on hostile input, with the built-in policy, a real state store and a
//! backend that records what it was asked to store.

use super::*;
use crate::answer;
use crate::delivery::memory::Memory;
use crate::lmtp::Recipient;
use crate::policy::Target;
use crate::spool::SpoolWriter;

struct Fixture {
    pipeline: Pipeline,
    backend: Arc<Memory>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    // COI active for everyone: the policy would route chat, so plain mail is a choice.
    config.coi.enabled = true;
    let store = Store::open(&dir.path().join("coid.sqlite")).expect("store");
    let policy = Policy::load("", 10_000).expect("built-in policy");
    let backend = Arc::new(Memory::default());
    let pipeline = Pipeline::new(&config, Arc::new(policy), store, backend.clone());
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

/// `raw` spooled in memory, or in a file under `dir` when `to_file`.
async fn spool(raw: &[u8], to_file: bool, dir: &std::path::Path) -> Spooled {
    let threshold = if to_file { 0 } else { raw.len() + 1 };
    let mut writer = SpoolWriter::new(threshold, dir);
    writer.write(raw).await.expect("spool write");
    writer.finish().await.expect("spool finish")
}

/// Messages with no header section at all (issue 12, bug 1): mail-parser finds no
/// header field in them.
const HEADERLESS: [&[u8]; 5] = [
    b"\r\nNo header, just a body.\r\n",
    b"\r\n",
    b"\n\nLF only, no header\n",
    b"a single line without a colon\r\n",
    b"",
];

#[tokio::test]
async fn a_headerless_message_is_delivered_as_plain_mail() {
    let f = fixture();
    let rcpts = ["alice@example.org", "bob@example.org"];
    for raw in HEADERLESS {
        for to_file in [false, true] {
            let body = spool(raw, to_file, f.dir.path()).await;
            let (replies, _) = f.pipeline.process(&envelope(&rcpts), &body).await;
            assert_eq!(
                replies.as_slice(),
                vec![answer::DELIVERED; rcpts.len()],
                "{raw:?} (spooled to a file: {to_file})"
            );
            let decisions = f
                .pipeline
                .decide(&envelope(&rcpts), &body)
                .await
                .expect("decided");
            assert_eq!(decisions.classification, Classification::EMAIL, "{raw:?}");
        }
    }
    let jobs = f.backend.jobs();
    assert_eq!(jobs.len(), HEADERLESS.len() * 2 * rcpts.len());
    assert!(jobs.iter().all(|j| j.target == Target::inbox()), "{jobs:?}");
}

#[test]
fn a_panic_in_parsing_or_the_policy_becomes_an_error_for_that_message() {
    let err = isolate(|| -> u8 { panic!("index out of bounds") }).expect_err("isolated");
    assert!(
        matches!(&err, PipelineError::Panic(text) if text == "index out of bounds"),
        "{err:?}"
    );
    let owned = format!("owned {}", 1);
    let err = isolate(move || -> u8 { panic!("{owned}") }).expect_err("isolated");
    assert!(
        matches!(&err, PipelineError::Panic(text) if text == "owned 1"),
        "{err:?}"
    );
    assert_eq!(isolate(|| 7).ok(), Some(7));
}

/// Decided from the header section before the body is complete (cut-through), a
/// message gets the same replies as decided after it: with a backend that cannot
/// stream, it is spooled and delivered with the decisions already made.
#[tokio::test]
async fn deciding_early_answers_as_deciding_late() {
    let f = fixture();
    let rcpts = ["alice@example.org", "bob@example.org"];
    let raw = b"Subject: early\r\nChat-Version: 1.0\r\n\r\nbody\r\n";
    let body = spool(raw, false, f.dir.path()).await;
    let (late, _) = f.pipeline.process(&envelope(&rcpts), &body).await;
    let header = raw.get(..37).unwrap_or_default().to_vec();
    let (early, plan) = f
        .pipeline
        .decide_early(&envelope(&rcpts), header, None)
        .await;
    assert!(
        matches!(plan, Plan::Spool),
        "the memory backend cannot stream"
    );
    assert!(!f.pipeline.streams());
    let (replies, _) = f
        .pipeline
        .finish_spooled(&envelope(&rcpts), early, &body)
        .await;
    assert_eq!(replies, late);
    let jobs = f.backend.jobs();
    assert_eq!(jobs.len(), 2 * rcpts.len());
    let targets: Vec<_> = jobs.iter().map(|j| (&j.rcpt, &j.target)).collect();
    assert_eq!(
        targets.get(..2),
        targets.get(2..),
        "the same copies both ways"
    );
}
