//! Classification of real messages: what a real Delta Chat client (deltachat-rpc-server
//! 2.65.0 and 2.59.0) sent through a real Postfix, kept byte for byte under
//! `tests/data/eml/deltachat/` (see `tests/deltachat/README.md` for how they were made).

mod common;

use coid::classify::{Class, Signal, classify_raw};
use common::message::{DELTACHAT_FIXTURES, deltachat_fixture as fixture};
use rstest::rstest;

#[rstest]
#[case::encrypted_1to1("encrypted-1to1.eml")]
#[case::encrypted_group("encrypted-group.eml")]
#[case::encrypted_group_reply("encrypted-group-reply.eml")]
#[case::mdn("mdn.eml")]
#[case::reaction("reaction.eml")]
#[case::pre_message("encrypted-file-pre-message.eml")]
#[case::post_message("encrypted-file-post-message.eml")]
#[case::sync("multi-device-sync.eml")]
#[case::securejoin_1("securejoin-step1-vc-request-pubkey.eml")]
#[case::securejoin_2("securejoin-step2-vc-pubkey.eml")]
#[case::securejoin_3("securejoin-step3-vc-request-with-auth.eml")]
#[case::securejoin_4("securejoin-step4-vc-contact-confirm.eml")]
#[case::securejoin_group_3("securejoin-group-step3-vg-request-with-auth.eml")]
#[case::securejoin_group_4("securejoin-group-step4-vg-member-added.eml")]
fn encrypted_deltachat_messages_are_chat(#[case] name: &str) {
    let c = classify_raw(&fixture(name));
    assert!(c.is_chat, "{name}: {c:?}");
    assert_eq!(
        c.class,
        Class::Chat,
        "{name}: encrypted: 1:1, group and MDN look alike outside"
    );
    assert_eq!(c.signal, Signal::DeltaChatEncrypted, "{name}");
}

#[rstest]
#[case::unencrypted_1to1("unencrypted-1to1.eml", Class::Chat)]
#[case::unencrypted_group("unencrypted-group.eml", Class::Chat)]
fn unencrypted_deltachat_messages_carry_chat_version(#[case] name: &str, #[case] class: Class) {
    let c = classify_raw(&fixture(name));
    assert_eq!(
        (c.class, c.signal),
        (class, Signal::ChatVersion),
        "{name}: {c:?}"
    );
}

/// Older cores still put Chat-Version outside the encryption.
#[test]
fn deltachat_2_59_messages_are_chat() {
    let dir = format!("{DELTACHAT_FIXTURES}/v2.59.0");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("v2.59.0 fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "eml") {
            let c = classify_raw(&std::fs::read(&path).expect("read"));
            assert!(c.is_chat, "{}: {c:?}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 10, "only {seen} fixtures in {dir}");
}
