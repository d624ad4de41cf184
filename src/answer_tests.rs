//! Every answer and cause to its reply: code, enhanced code and text, as one table.

use super::*;

fn store(code: u16, enhanced: [u16; 3], text: &'static str) -> Reply {
    Reply::new(code, enhanced, text)
}

#[test]
fn every_cause_maps_to_its_code_and_enhanced_code() {
    let quota = store(452, [4, 2, 2], "Mailbox is full");
    let no_user = store(550, [5, 1, 1], "User doesn't exist");
    let table: Vec<(Answer, &str)> = vec![
        (Answer::Delivery(Outcome::Delivered), "250 2.0.0 Delivered"),
        (Answer::Discarded, "250 2.0.0 Discarded by policy"),
        (
            Answer::Rejected(String::new()),
            "550 5.7.1 Rejected by policy",
        ),
        (
            Answer::Rejected("  ".into()),
            "550 5.7.1 Rejected by policy",
        ),
        (Answer::Rejected("no spam".into()), "550 5.7.1 no spam"),
        (
            Answer::Rejected("two\r\n250 lines".into()),
            "550 5.7.1 two  250 lines",
        ),
        (
            Answer::Delivery(Outcome::Temporary(Temporary::Store(quota))),
            "452 4.2.2 Mailbox is full",
        ),
        (
            Answer::Delivery(Outcome::Temporary(Temporary::Unreachable)),
            "451 4.4.1 Mail store unavailable, try again later",
        ),
        (
            Answer::Delivery(Outcome::Temporary(Temporary::Broken)),
            "451 4.4.1 Mail store unavailable, try again later",
        ),
        (
            Answer::Delivery(Outcome::Temporary(Temporary::Local)),
            "451 4.3.0 Temporary failure, try again later",
        ),
        (
            Answer::Delivery(Outcome::Temporary(Temporary::NotAnswered)),
            "451 4.3.0 Temporary failure, try again later",
        ),
        (
            Answer::Delivery(Outcome::Permanent(Permanent::Store(no_user))),
            "550 5.1.1 User doesn't exist",
        ),
        (
            Answer::Delivery(Outcome::Permanent(Permanent::Utf8AddressUnsupported)),
            "553 5.6.7 Non-ASCII address, but the mail store does not support SMTPUTF8",
        ),
        (
            Answer::Delivery(Outcome::Permanent(Permanent::BadMailbox)),
            "550 5.1.1 Bad destination mailbox address",
        ),
        (
            Answer::Own(Own::Spool),
            "451 4.3.0 Temporary failure, try again later",
        ),
        (
            Answer::Own(Own::StateStore),
            "451 4.3.0 Temporary failure, try again later",
        ),
        (
            Answer::Own(Own::Panic),
            "451 4.3.0 Temporary failure, try again later",
        ),
        (
            Answer::Own(Own::Task),
            "451 4.3.0 Temporary failure, try again later",
        ),
    ];
    for (answer, want) in table {
        assert_eq!(reply(&answer).to_string(), want, "{answer:?}");
    }
}

/// A store reply in the wrong class (a 2xx or 5xx filed as temporary, a 2xx or 4xx
/// filed as permanent) is never passed on: it would turn a failure into a success or
/// a retry into a bounce.
#[test]
fn a_store_reply_of_the_wrong_class_is_never_passed_on() {
    let unavailable = "451 4.4.1 Mail store unavailable, try again later";
    for odd in [
        store(250, [2, 0, 0], "Saved"),
        store(354, [0, 0, 0], "Go ahead"),
        store(550, [5, 1, 1], "No"),
    ] {
        let answer = Answer::Delivery(Outcome::Temporary(Temporary::Store(odd)));
        assert_eq!(reply(&answer).to_string(), unavailable, "{answer:?}");
    }
    for odd in [
        store(250, [2, 0, 0], "Saved"),
        store(452, [4, 2, 2], "Full"),
    ] {
        let answer = Answer::Delivery(Outcome::Permanent(Permanent::Store(odd)));
        assert_eq!(reply(&answer).to_string(), unavailable, "{answer:?}");
    }
}
