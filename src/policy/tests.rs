//! Policy behaviour: the default script against the COI server spec, the refusals and
//! the fail-safe keep.

use mail_parser::MessageParser;

use super::*;
use crate::classify::classify_raw;
use crate::config::CoiConfig;
use crate::store::MessageFilter;

const CHAT: &str =
    "From: a@x\r\nChat-Version: 1.0\r\nMessage-ID: <chat$1@x>\r\nSubject: hi\r\n\r\nhello\r\n";
const EMAIL: &str = "From: a@x\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n\r\nhello\r\n";

fn settings(enabled: bool, filter: MessageFilter) -> CoiSettings {
    CoiSettings {
        enabled,
        message_filter: filter,
        ..CoiSettings::defaults(&CoiConfig::default())
    }
}

fn run(policy: &Policy, raw: &str, settings: &CoiSettings) -> Evaluation {
    let classification = classify_raw(raw.as_bytes());
    let message = MessageParser::new().parse(raw.as_bytes()).expect("parses");
    let facts = Facts {
        mail_from: "a@x",
        rcpt: "b@y",
        classification: &classification,
        settings,
    };
    policy.evaluate(message, &facts)
}

fn default_policy() -> Policy {
    Policy::load("", 10_000).expect("default compiles")
}

fn target(folder: Option<&str>, flags: &[&str], create: bool) -> Verdict {
    Verdict::Deliver(vec![Target {
        folder: folder.map(str::to_owned),
        flags: flags.iter().map(|f| (*f).to_owned()).collect(),
        create,
    }])
}

#[test]
fn active_files_chats_into_chats_folder() {
    let e = run(
        &default_policy(),
        CHAT,
        &settings(true, MessageFilter::Active),
    );
    assert_eq!(e.verdict, target(Some("COI/Chats"), &["$Chat"], true));
    assert_eq!(e.warning, None);
}

#[test]
fn none_and_seen_keep_chats_in_inbox_with_keyword() {
    for filter in [MessageFilter::None, MessageFilter::Seen] {
        let e = run(&default_policy(), CHAT, &settings(true, filter));
        assert_eq!(e.verdict, target(None, &["$Chat"], false), "{filter:?}");
    }
}

#[test]
fn coi_disabled_or_plain_email_is_a_plain_keep() {
    let e = run(
        &default_policy(),
        CHAT,
        &settings(false, MessageFilter::Active),
    );
    assert_eq!(e.verdict, target(None, &[], false));
    let e = run(
        &default_policy(),
        EMAIL,
        &settings(true, MessageFilter::Active),
    );
    assert_eq!(e.verdict, target(None, &[], false));
}

#[test]
fn reject_discard_and_copies() {
    let reject =
        Policy::compile("require \"reject\"; reject \"no thanks\";", "t", 1000).expect("compiles");
    assert_eq!(
        run(&reject, EMAIL, &settings(true, MessageFilter::None)).verdict,
        Verdict::Reject("no thanks".into())
    );
    let discard = Policy::compile("discard;", "t", 1000).expect("compiles");
    assert_eq!(
        run(&discard, EMAIL, &settings(true, MessageFilter::None)).verdict,
        Verdict::Discard
    );
    let copy = Policy::compile(
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"Archive\";",
        "t",
        1000,
    )
    .expect("compiles");
    let Verdict::Deliver(targets) = run(&copy, EMAIL, &settings(true, MessageFilter::None)).verdict
    else {
        panic!("expected delivery");
    };
    assert_eq!(targets.len(), 2, "{targets:?}");
}

#[test]
fn unsupported_actions_are_refused_at_compile_time() {
    for script in [
        "redirect \"x@example.org\";",
        "require \"vacation\"; vacation \"away\";",
        "require \"enotify\"; notify \"mailto:x@example.org\";",
        "require \"editheader\"; addheader \"X\" \"y\";",
    ] {
        let err = Policy::compile(script, "t", 1000).err().expect(script);
        assert!(
            matches!(err, PolicyError::Refused { .. }),
            "{script}: {err}"
        );
    }
    let err = Policy::compile("if true {", "t", 1000)
        .err()
        .expect("syntax error");
    assert!(matches!(err, PolicyError::Compile { .. }), "{err}");
}

#[test]
fn cpu_limit_falls_back_to_plain_keep_with_warning() {
    let script = "require [\"variables\", \"fileinto\"];\n\
        set \"a\" \"x\";\n\
        if string :matches \"${a}${a}${a}${a}\" \"*x*x*x*x*\" { fileinto \"Spam\"; }\n\
        if string :matches \"${a}${a}${a}${a}\" \"*x*x*x*x*\" { fileinto \"Spam\"; }\n\
        if string :matches \"${a}${a}${a}${a}\" \"*x*x*x*x*\" { fileinto \"Spam\"; }\n";
    let policy = Policy::compile(script, "t", 3).expect("compiles");
    let e = run(&policy, EMAIL, &settings(true, MessageFilter::None));
    assert_eq!(e.verdict, target(None, &[], false));
    assert!(e.warning.is_some(), "{e:?}");
}

#[test]
fn environment_items_are_visible() {
    // Match variables are used directly: sieve-rs 0.7 leaves `set "v" "${1}"` empty.
    let script = "require [\"environment\", \"variables\", \"fileinto\"];\n\
        if allof (environment :is \"vnd.coid.class\" \"group\",\n\
                  environment :matches \"vnd.coid.group-id\" \"*\") { fileinto \"group-${1}\"; }\n";
    let policy = Policy::compile(script, "t", 1000).expect("compiles");
    let raw = "Chat-Version: 1.0\r\nMessage-ID: <chat$group.abcdefabcdef.x@y>\r\n\r\nhi";
    let e = run(&policy, raw, &settings(true, MessageFilter::None));
    assert_eq!(e.verdict, target(Some("group-abcdefabcdef"), &[], false));
}
