//! Unit tests of the attribute dictionary over a real (temporary) SQLite store: the
//! key mapping end to end, the COI write rules, the virtual `mailbox-root`, and
//! iteration depth, order and bounds.

use super::*;
use crate::store::{CoiSettings, ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, MessageFilter, temp_store};

const GUID: &str = "0413580b5cf9006b1e38000083ecc375";
const ALICE: &str = "alice@example.org";

fn server_key(name: &str) -> String {
    format!("priv/{GUID}/vendor/vendor.dovecot/pvt/server/{name}")
}

fn coi_key(name: &str) -> String {
    server_key(&format!("vendor/vendor.dovecot/coi/config/{name}"))
}

fn setup() -> (tempfile::TempDir, Store, Attributes) {
    let (dir, store) = temp_store();
    let attrs = Attributes::new(
        store.clone(),
        &UsersConfig::default(),
        &CoiConfig::default(),
    );
    (dir, store, attrs)
}

fn set(key: &str, value: &str) -> Change {
    Change {
        key: key.into(),
        value: Some(value.into()),
    }
}

fn unset(key: &str) -> Change {
    Change {
        key: key.into(),
        value: None,
    }
}

fn keys(replies: &[Reply]) -> Vec<String> {
    replies
        .iter()
        .filter_map(|r| match r {
            Reply::Row { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn coi_settings_written_over_the_dict_reach_the_delivery_path() {
    let (_dir, store, attrs) = setup();
    let reply = attrs.commit(
        1,
        false,
        ALICE,
        &[
            set(&coi_key("enabled"), "yes"),
            set(&coi_key("message-filter"), "active"),
        ],
    );
    assert_eq!(
        reply,
        Reply::Committed {
            id: 1,
            async_: false
        }
    );
    let defaults = CoiSettings::defaults(&CoiConfig::default());
    let settings = store.coi_settings(ALICE, &defaults).expect("settings");
    assert!(settings.enabled);
    assert_eq!(settings.message_filter, MessageFilter::Active);
    assert_eq!(
        store
            .get(ALICE, ENTRY_MESSAGE_FILTER)
            .expect("get")
            .as_deref(),
        Some("active")
    );
    assert_eq!(
        attrs.lookup(ALICE, &coi_key("enabled")),
        Reply::Value("yes".into())
    );
    // Usernames are normalised like recipients: the domain is case-insensitive.
    assert_eq!(
        attrs.lookup("alice@Example.ORG", &coi_key("enabled")),
        Reply::Value("yes".into())
    );
    attrs.commit(2, false, ALICE, &[unset(&coi_key("enabled"))]);
    assert_eq!(store.get(ALICE, ENTRY_ENABLED).expect("get"), None);
    assert_eq!(attrs.lookup(ALICE, &coi_key("enabled")), Reply::NotFound);
}

#[test]
fn refused_values_fail_the_whole_commit() {
    let (_dir, store, attrs) = setup();
    for (change, needle) in [
        (set(&coi_key("enabled"), "true"), "invalid value"),
        (set(&coi_key("message-filter"), "inactive"), "invalid value"),
        (set(&coi_key("mailbox-root"), "Chats"), "read-only"),
        (unset(&coi_key("mailbox-root")), "read-only"),
    ] {
        let reply = attrs.commit(
            9,
            false,
            ALICE,
            &[set(&server_key("comment"), "kept?"), change.clone()],
        );
        let Reply::CommitFailed {
            id: Some(9), error, ..
        } = &reply
        else {
            panic!("{change:?} was accepted: {reply:?}")
        };
        assert!(error.contains(needle), "{error}");
    }
    assert!(
        store.entries(ALICE).expect("entries").is_empty(),
        "nothing stored"
    );
}

#[test]
fn mailbox_root_is_virtual() {
    let (_dir, _store, attrs) = setup();
    assert_eq!(
        attrs.lookup(ALICE, &coi_key("mailbox-root")),
        Reply::Value("COI".into())
    );
    attrs.commit(1, false, ALICE, &[set(&coi_key("enabled"), "yes")]);
    let path = coi_key("");
    let rows = attrs.iterate(ALICE, &path, IterFlags(9), 100);
    assert_eq!(
        keys(&rows),
        // message-filter: the server default, as delivery uses it.
        [
            coi_key("enabled"),
            coi_key("mailbox-root"),
            coi_key("message-filter")
        ],
        "{rows:?}"
    );
    assert_eq!(rows.last(), Some(&Reply::EndOfRows));
    let with_values = attrs.iterate(ALICE, &path, IterFlags(1), 100);
    assert!(with_values.contains(&Reply::Row {
        key: coi_key("mailbox-root"),
        value: Some("COI".into())
    }));
    // Not listed for a path that does not cover it.
    let rows = attrs.iterate(ALICE, &coi_key("enab"), IterFlags(9), 100);
    assert_eq!(keys(&rows), [coi_key("enabled")]);
}

#[test]
fn other_keys_round_trip_verbatim() {
    let (_dir, store, attrs) = setup();
    let mailbox = format!("priv/{GUID}/comment");
    let shared = format!("shared/{GUID}/comment");
    let internal = server_key("vendor/vendor.dovecot/pvt/sieve/x");
    attrs.commit(
        3,
        false,
        ALICE,
        &[
            set(&mailbox, "on inbox"),
            set(&shared, "shared\tvalue"),
            set(&internal, "internal"),
            set(&server_key("comment"), "server"),
        ],
    );
    assert_eq!(
        attrs.lookup(ALICE, &mailbox),
        Reply::Value("on inbox".into())
    );
    assert_eq!(
        attrs.lookup(ALICE, &shared),
        Reply::Value("shared\tvalue".into())
    );
    assert_eq!(
        attrs.lookup(ALICE, &internal),
        Reply::Value("internal".into())
    );
    assert_eq!(
        store
            .get(ALICE, "/private/comment")
            .expect("get")
            .as_deref(),
        Some("server")
    );
    assert_eq!(
        store
            .lookup(Table::Attributes, ALICE, &mailbox)
            .expect("raw")
            .as_deref(),
        Some("on inbox")
    );
    // A mailbox's own iteration does not list the server entries: Dovecot unsets
    // whatever it lists when that mailbox is deleted.
    let rows = attrs.iterate(ALICE, &format!("priv/{GUID}/"), IterFlags(9), 100);
    assert_eq!(keys(&rows), [mailbox.clone(), internal.clone()]);
    let rows = attrs.iterate(ALICE, &server_key(""), IterFlags(9), 100);
    assert_eq!(
        keys(&rows),
        [
            server_key("comment"),
            coi_key("mailbox-root"),
            coi_key("message-filter"),
            internal
        ],
    );
    // Another user sees nothing of alice's.
    assert_eq!(attrs.lookup("bob@example.org", &mailbox), Reply::NotFound);
}

#[test]
fn iteration_depth_and_bounds() {
    let (_dir, _store, attrs) = setup();
    let changes: Vec<Change> = (0..10)
        .map(|i| set(&format!("priv/{GUID}/dir/k{i}"), &format!("{}", 9 - i)))
        .chain([set(&format!("priv/{GUID}/dir/sub/deep"), "x")])
        .collect();
    attrs.commit(1, false, ALICE, &changes);
    let path = format!("priv/{GUID}/dir/");
    assert_eq!(
        keys(&attrs.iterate(ALICE, &path, IterFlags(1), 100)).len(),
        11
    );
    assert_eq!(
        keys(&attrs.iterate(ALICE, &path, IterFlags(0), 100)).len(),
        10
    );
    let cut = attrs.iterate(ALICE, &path, IterFlags(1), 4);
    assert_eq!(cut.len(), 5, "4 rows and the end: {cut:?}");
    let by_value = attrs.iterate(ALICE, &path, IterFlags(0x04), 100);
    assert_eq!(
        keys(&by_value).first(),
        Some(&format!("priv/{GUID}/dir/k9"))
    );
    let exact = attrs.iterate(ALICE, &format!("{path}k3"), IterFlags(0x10), 100);
    assert_eq!(keys(&exact), [format!("{path}k3")]);
    // Dovecot asks "server//" for GETMETADATA (DEPTH infinity) "" (/private): nothing.
    let rows = attrs.iterate(ALICE, &server_key("/"), IterFlags(9), 100);
    assert_eq!(rows, [Reply::EndOfRows]);
}

#[test]
fn coi_defaults_are_read_by_users_without_their_own() {
    let (_dir, store) = temp_store();
    let coi = CoiConfig {
        enabled: true,
        message_filter: MessageFilter::Active,
        ..CoiConfig::default()
    };
    let attrs = Attributes::new(store.clone(), &UsersConfig::default(), &coi);
    assert_eq!(
        attrs.lookup(ALICE, &coi_key("enabled")),
        Reply::Value("yes".into())
    );
    assert_eq!(
        attrs.lookup(ALICE, &coi_key("message-filter")),
        Reply::Value("active".into())
    );
    assert!(
        store.entries(ALICE).expect("entries").is_empty(),
        "read stores nothing"
    );
    attrs.commit(1, false, ALICE, &[set(&coi_key("message-filter"), "seen")]);
    assert_eq!(
        attrs.lookup(ALICE, &coi_key("message-filter")),
        Reply::Value("seen".into())
    );
    let rows = attrs.iterate(ALICE, &coi_key(""), IterFlags(9), 100);
    assert_eq!(
        keys(&rows),
        [
            coi_key("enabled"),
            coi_key("mailbox-root"),
            coi_key("message-filter")
        ]
    );
    // Listed once: the user's own value, not the default beside it.
    let rows = attrs.iterate(ALICE, &coi_key(""), IterFlags(1), 100);
    assert!(
        rows.contains(&Reply::Row {
            key: coi_key("message-filter"),
            value: Some("seen".into())
        }),
        "{rows:?}"
    );
    assert!(
        !rows.contains(&Reply::Row {
            key: coi_key("message-filter"),
            value: Some("active".into())
        }),
        "{rows:?}"
    );
    // [coi] enabled = false: NIL (the spec has no "no").
    let (_dir, store) = temp_store();
    let attrs = Attributes::new(store, &UsersConfig::default(), &CoiConfig::default());
    assert_eq!(attrs.lookup(ALICE, &coi_key("enabled")), Reply::NotFound);
}
