//! METADATA writes as the dict proxy plans them (`dict::Attributes::plan`: where the key
//! lives, `dict::keys`, then the rules of the entry): the COI settings
//! (`store::coi::check_entry_write`), WebPush subscriptions and their validation
//! (`push::webpush::subscription::parse_request`), Delta Chat device tokens
//! (`push::deltachat::token::check`), read-only server entries, and raw keys. The
//! same value also goes to those checks directly.
//!
//! Properties, beyond "no panic":
//! - a COI setting is accepted only with a value the delivery path reads as meant
//!   (`enabled`: `yes` or NIL; `message-filter`: one `MessageFilter` parses, and writes
//!   back unchanged); `mailbox-root` and the server entries never;
//! - a private server entry's key comes back from the entry name (iterations list it
//!   under the key Dovecot asked for);
//! - a device token is accepted only when `token::check` accepts it (printable ASCII,
//!   1 to 4096 bytes), stored as sent, under its `TokenId`;
//! - a subscription is accepted only when `parse_request` accepts it, is stored with
//!   exactly its fields and a public https endpoint, and its listing (what GETMETADATA
//!   returns) is accepted again with the same fields;
//! - a refusal is a text that fits one dict reply line.
//!
//! Input: `<dict key>` TAB `<value>`, or `<dict key>` alone for NIL (as Dovecot sends
//! `S<id>\t<key>\t<value>` and `U<id>\t<key>`).

#![no_main]

use std::sync::OnceLock;

use coid::dict::keys::{Place, ServerScope, place};
use coid::dict::protocol::{Reply, unescape};
use coid::dict::session::Change;
use coid::dict::webpush::Entry;
use coid::push::deltachat::token::{self, MAX_TOKEN, TokenId};
use coid::push::endpoint::EndpointPolicy;
use coid::push::webpush::subscription::{parse_request, rfc3339};
use coid::store::{
    ENTRY_ENABLED, ENTRY_MAILBOX_ROOT, ENTRY_MESSAGE_FILTER, MessageFilter, Op, Table,
    check_entry_write, unix_now_ms,
};
use coid_fuzz::{Setup, USER};
use libfuzzer_sys::fuzz_target;

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(Setup::new)
}

fn check_refusal(refusal: &str) {
    assert!(!refusal.is_empty());
    let mut line = Vec::new();
    Reply::CommitFailed {
        id: Some(1),
        async_: false,
        error: refusal.to_owned(),
    }
    .encode(&mut line);
    assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    let field = line.split(|&b| b == b'\t').nth(1).expect("error field");
    let field = field.strip_suffix(b"\n").expect("LF");
    assert_eq!(unescape(field).as_deref(), Ok(refusal));
}

fn check_entry(key: &str, entry: &str, value: Option<&str>) {
    assert_eq!(place(key), Place::Entry(entry.to_owned()));
    assert!(entry.starts_with("/private/") && entry != ENTRY_MAILBOX_ROOT);
    assert!(
        Entry::parse(entry).is_none(),
        "WebPush entry {entry} stored plainly"
    );
    assert_eq!(check_entry_write(entry, value), Ok(()));
    if entry == ENTRY_ENABLED {
        assert!(matches!(value, None | Some("yes")), "enabled = {value:?}");
    }
    if entry == ENTRY_MESSAGE_FILTER
        && let Some(value) = value
    {
        let filter = MessageFilter::parse(value).expect("accepted filter parses");
        assert_eq!(MessageFilter::parse(filter.as_str()), Some(filter));
    }
    let scope = ServerScope::of(key).expect("a server entry's key is in the server space");
    assert_eq!(scope.key_for(entry).as_deref(), Some(key), "entry {entry}");
}

fn check_subscription(key: &str, value: Option<&str>, op: &Op) {
    let Place::Entry(entry) = place(key) else {
        panic!("subscription from {key}");
    };
    let Some(Entry::Subscription(id)) = Entry::parse(&entry) else {
        panic!("subscription from entry {entry}");
    };
    let Op::Subscribe(new) = op else { return };
    let value = value.expect("a subscription has a value");
    let request = parse_request(id, value).expect("accepted subscription parses");
    let stored = &new.subscription;
    assert_eq!(
        (
            &stored.id,
            &stored.client,
            &stored.device,
            &stored.msgtype,
            &stored.endpoint,
            &stored.p256dh,
            &stored.auth
        ),
        (
            &request.id,
            &request.client,
            &request.device,
            &request.msgtype,
            &request.endpoint_text,
            &request.p256dh,
            &request.auth
        )
    );
    let policy = EndpointPolicy {
        allow_private: false,
    };
    assert!(policy.check_url(&request.endpoint).is_ok());
    assert_eq!(request.endpoint.scheme(), "https");
    let listing = request.listing_json(&rfc3339(stored.created), false);
    let again = parse_request(id, &listing).expect("the listing is accepted again");
    assert_eq!(again, request, "listing {listing}");
}

fuzz_target!(|data: &[u8]| {
    // The dict protocol hands on only UTF-8 without NUL (`dict::protocol::unescape`).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains('\0') {
        return;
    }
    let (key, value) = match text.split_once('\t') {
        Some((key, value)) => (key, Some(value)),
        None => (text, None),
    };
    // The checks on their own, whatever the key.
    let token_ok = value.is_some_and(|v| token::check(v).is_ok());
    if token_ok {
        let token = value.unwrap_or_default();
        assert!(
            (1..=MAX_TOKEN).contains(&token.len())
                && token.bytes().all(|b| (0x20..=0x7e).contains(&b))
        );
    }
    for entry in [ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, ENTRY_MAILBOX_ROOT] {
        if let Err(refusal) = check_entry_write(entry, value) {
            check_refusal(&refusal);
        }
    }
    if let Some(value) = value {
        let id = key.rsplit('/').next().unwrap_or_default();
        let _ = parse_request(id, value);
    }

    let change = Change {
        key: key.to_owned(),
        value: value.map(str::to_owned),
    };
    let op = match setup().attributes.plan(USER, &change, unix_now_ms()) {
        Ok(op) => op,
        Err(refusal) => return check_refusal(&refusal),
    };
    match &op {
        Op::Put(write) if write.table == Table::Metadata => {
            assert_eq!(write.value.as_deref(), value);
            check_entry(key, &write.key, value);
        }
        Op::Put(write) => {
            assert_eq!(place(key), Place::Raw);
            assert_eq!((write.key.as_str(), write.value.as_deref()), (key, value));
        }
        Op::AddToken { id, token, .. } => {
            assert_eq!(place(key), Place::DeviceToken);
            assert!(token_ok, "token {token:?} accepted");
            assert_eq!(Some(token.as_str()), value);
            assert_eq!(id, TokenId::of(token).as_str());
        }
        Op::RemoveTokens => {
            assert_eq!((place(key), value), (Place::DeviceToken, None));
        }
        Op::Subscribe(_) | Op::Unsubscribe { .. } => check_subscription(key, value, &op),
        Op::Validate { id, token, .. } => {
            let Place::Entry(entry) = place(key) else {
                panic!("validation from {key}");
            };
            assert_eq!(Entry::parse(&entry), Some(Entry::Validate(id)));
            assert_eq!(Some(token.as_str()), value);
        }
    }
});
