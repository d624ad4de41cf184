//! Moving a host's state from SQLite into PostgreSQL with the real `coid` binary, as
//! the README tells the operator: a coid on SQLite gets a user's settings, its VAPID
//! key and a validated Web Push subscription, and a push is left queued while coid is
//! stopped; then `coid state export` with the old config and `coid state import` with
//! a config naming a fresh PostgreSQL database (the real test server). The commands
//! on the new config show the same settings, key and subscription, and the new store
//! exports the very same rows. A second import, into the now full store, is refused
//! (78) and changes nothing; a bad file is refused (65) and names its line.
//!
//! Needs the push receiver (`COID_TEST_PYTHON`) and PostgreSQL, like `tests/cli.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::coid::{Coid, CoidOpts, run_cli};
use common::metadata::DictClient;
use common::push_flow::subscription_json;
use common::push_receiver::{Answer, PushReceiver};
use common::wait_until;

const CHAT: &[u8] = b"From: bob@example.net\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\nMessage-ID: <chat$1@example.net>\r\n\r\nhi\r\n";

const ALICE: &str = "alice@example.org";

fn webpush_key(name: &str) -> String {
    format!(
        "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/webpush/{name}"
    )
}

/// One dict transaction setting `key` for alice; returns coid's answer.
fn dict_set(dict: &mut DictClient, id: u32, key: &str, value: &str) -> String {
    dict.send(format!("B{id}\t{ALICE}\nS{id}\t{key}\t{value}\nC{id}\n").as_bytes());
    String::from_utf8(dict.line().expect("commit answer")).expect("utf-8")
}

/// `coid ARGS` with `config`, which must succeed; its standard output.
fn ok(config: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    let (code, out, err) = run_cli(config, args, stdin);
    assert_eq!(code, 0, "coid {args:?}: {err}");
    out
}

/// The old config with its `[state]` section replaced: a new state directory (`name`
/// under `dir`) and the PostgreSQL database `url`; written to `dir/name.toml`.
fn postgres_config(old: &Path, dir: &Path, name: &str, url: &str) -> PathBuf {
    let text = std::fs::read_to_string(old).expect("old config");
    let start = text.find("[state]\n").expect("[state]");
    let end = text.find("[policy]\n").expect("[policy] after [state]");
    let state = format!(
        "[state]\ndir = \"{}\"\ndatabase = \"postgresql\"\n[state.postgresql]\nurl = \"{url}\"\n",
        dir.join(name).display()
    );
    let path = dir.join(format!("{name}.toml"));
    let new = format!("{}{state}{}", &text[..start], &text[end..]);
    std::fs::write(&path, new).expect("write new config");
    path
}

/// The rows of a state file (its header left out).
fn rows(file: &str) -> Vec<&str> {
    file.lines().skip(1).collect()
}

#[test]
fn sqlite_state_moves_into_postgresql() {
    let receiver = PushReceiver::start(&[("dev", vec![Answer::Status(201)])]);
    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
    opts.backend = "maildir".into();
    opts.extra_toml = "[push]\nallow_private_endpoints = true\n".into();
    let mut old = Coid::start(opts);
    let old_config = old.config_path();

    old.user_set(ALICE, &["enabled=yes", "message-filter=seen"]);
    let pem = ok(&old_config, &["push", "vapid"], None);
    let mut dict = DictClient::connect(&old);
    dict.send(b"H3\t2\t0\t\tcoid\n");
    let json = subscription_json(&receiver.keys("dev"), "chat");
    let subscribe = webpush_key("subscriptions/dev-phone-1");
    assert_eq!(dict_set(&mut dict, 1, &subscribe, &json), "O1");
    let seen = receiver.wait_for_requests(1, Duration::from_secs(15));
    let plain: serde_json::Value =
        serde_json::from_str(seen[0]["plaintext"].as_str().expect("decrypted")).expect("json");
    let token = plain["validation"].as_str().expect("token");
    let validate = webpush_key("subscriptions/dev-phone-1/validate");
    assert_eq!(dict_set(&mut dict, 2, &validate, token), "O2");
    let list = ["push", "list", ALICE];
    wait_until(Duration::from_secs(10), || {
        ok(&old_config, &list, None)
            .contains("\"pending\":0")
            .then_some(())
    })
    .expect("validation push sent");
    drop(dict);

    // The operator stops coid; a message delivered meanwhile leaves its push queued.
    old.stop();
    ok(&old_config, &["deliver", "--rcpt", ALICE], Some(CHAT));
    let user = ok(&old_config, &["user", "get", ALICE], None);
    let subscriptions = ok(&old_config, &list, None);
    assert!(subscriptions.contains("\"pending\":1"), "{subscriptions}");
    let exported = ok(&old_config, &["state", "export"], None);
    assert!(
        exported.starts_with("{\"coid-state\":1,"),
        "header: {exported}"
    );
    assert!(exported.contains("\"row\":\"push\""), "{exported}");

    let dir = tempfile::tempdir().expect("tempdir");
    let new_config = postgres_config(
        &old_config,
        dir.path(),
        "new",
        &common::postgres::fresh_url(),
    );
    ok(&new_config, &["state", "import"], Some(exported.as_bytes()));

    assert_eq!(ok(&new_config, &["user", "get", ALICE], None), user);
    assert_eq!(ok(&new_config, &["push", "vapid"], None), pem);
    assert_eq!(ok(&new_config, &list, None), subscriptions);
    let again = ok(&new_config, &["state", "export"], None);
    assert!(again.contains("\"engine\":\"postgresql\""), "{again}");
    assert_eq!(rows(&again), rows(&exported));

    // Into a store that holds state: refused, nothing changed.
    let (code, _, err) = run_cli(&new_config, &["state", "import"], Some(exported.as_bytes()));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        rows(&ok(&new_config, &["state", "export"], None)),
        rows(&exported)
    );

    // A bad file: refused, its line named.
    let other = postgres_config(
        &old_config,
        dir.path(),
        "other",
        &common::postgres::fresh_url(),
    );
    let bad = format!("{}{{\"row\":\"token\"}}\n", &exported);
    let (code, _, err) = run_cli(&other, &["state", "import"], Some(bad.as_bytes()));
    assert_eq!(code, 65, "{err}");
    let last = exported.lines().count() + 1;
    assert!(err.contains(&format!("line {last}:")), "{err}");
    assert_eq!(
        rows(&ok(&other, &["state", "export"], None)),
        Vec::<&str>::new()
    );
}
