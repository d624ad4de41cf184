//! The command line as an operator uses it: check-config (every problem, exit 78),
//! explain (JSON decision), deliver (LDA mode with sysexits codes), user get/set and
//! push list/delete/test/vapid, with the embedded Maildir backend (no mail server
//! needed; push subscriptions come over coid's dict socket, pushes go to the local
//! push receiver).

mod common;

use std::time::Duration;

use common::coid::{Coid, CoidOpts, run_cli};
use common::metadata::DictClient;
use common::push_flow::subscription_json;
use common::push_receiver::{Answer, PushReceiver};
use common::wait_until;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// A config with the state in a fresh directory, plus `extra`, in which `@DIR@`
    /// stands for that directory.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().display().to_string();
        // The embedded Maildir backend, unless `extra` picks one.
        let backend = if extra.contains("[delivery]") {
            ""
        } else {
            "[delivery]\nbackend = \"maildir\"\n"
        };
        let config = format!(
            "[lmtp]\ntcp = [\"127.0.0.1:0\"]\n[state]\ndir = \"{path}/state\"\n{backend}[delivery.maildir]\nfsync = false\n{}",
            extra.replace("@DIR@", &path)
        );
        std::fs::write(dir.path().join("coid.toml"), config).expect("config");
        Setup { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
        run_cli(&self.dir.path().join("coid.toml"), args, stdin)
    }
}

const CHAT: &[u8] = b"From: bob@example.net\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\nMessage-ID: <chat$1@example.net>\r\n\r\nhi\r\n";

#[test]
fn check_config_reports_every_problem() {
    let good = Setup::new("");
    let (code, out, _) = good.run(&["check-config"], None);
    assert_eq!(code, 0, "{out}");
    let bad = Setup::new(
        "[coi]\nmessage_filter = \"sometimes\"\n[policy]\nscript = \"/nonexistent/policy.sieve\"\n[users]\nusername = \"uid\"\n[dict]\nsocket = \"run/dict\"\n[push]\nvapid_subject = \"postmaster@example.org\"\nurgency = \"now\"\n",
    );
    let (code, _, err) = bad.run(&["check-config"], None);
    assert_eq!(code, 78, "{err}");
    for needle in [
        "message_filter",
        "users.username",
        "/nonexistent/policy.sieve",
        "dict.socket",
        "push.vapid_subject",
        "push.urgency",
    ] {
        assert!(err.contains(needle), "missing {needle} in {err}");
    }
    let nobody =
        Setup::new("[service]\nuser = \"no-such-coid-user\"\ngroup = \"no-such-coid-group\"\n");
    let (code, _, err) = nobody.run(&["check-config"], None);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("service.user: user \"no-such-coid-user\" does not exist"),
        "{err}"
    );
    assert!(
        err.contains("service.group: group \"no-such-coid-group\" does not exist"),
        "{err}"
    );
    let typo = Setup::new("[lmtp]\nmax_conections = 3\n");
    let (code, _, err) = typo.run(&["check-config"], None);
    assert_eq!(code, 78, "{err}");
}

/// Wrong words for several typed settings in one file: one `check-config` run names
/// each with its key, the word and the accepted ones, next to a semantic problem
/// (toml alone stops at the first wrong value).
#[test]
fn check_config_names_every_wrong_word_at_once() {
    let bad = Setup::new(
        "[delivery]\nbackend = \"imap\"\n[push]\nurgency = \"now\"\n[users]\nusername = \"uid\"\n\
         [dict]\nsocket_mode = \"0999\"\nmax_connections = 0\n",
    );
    let (code, _, err) = bad.run(&["check-config"], None);
    assert_eq!(code, 78, "{err}");
    for needle in [
        "delivery.backend: unknown variant `imap`, expected `maildir` or `dovecot`",
        "push.urgency: unknown variant `now`, expected one of `very-low`, `low`, `normal`, `high`",
        "users.username: unknown variant `uid`, expected `address` or `localpart`",
        "dict.socket_mode: \"0999\" is not an octal mode of at most 0777",
        "dict.max_connections: 0 is outside",
    ] {
        assert!(err.contains(needle), "missing {needle} in {err}");
    }
}

#[test]
fn explain_prints_the_decision_as_json() {
    let s = Setup::new("");
    let (code, _, err) = s.run(
        &[
            "user",
            "set",
            "alice@example.org",
            "enabled=yes",
            "message-filter=active",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s.run(
        &["explain", "--rcpt", "alice@example.org", "bob@example.org"],
        Some(CHAT),
    );
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    assert_eq!(json["class"], "chat");
    assert_eq!(json["recipients"][0]["action"], "fileinto");
    assert_eq!(json["recipients"][0]["folder"], "COI/Chats");
    assert_eq!(json["recipients"][0]["flags"][0], "$Chat");
    assert_eq!(json["recipients"][1]["action"], "keep");
    assert_eq!(json["recipients"][1]["folder"], "INBOX");
    let maildir = s.dir.path().join("state/mail");
    assert!(!maildir.exists(), "explain must not deliver");
}

#[test]
fn deliver_uses_sysexits() {
    let s = Setup::new("");
    let (code, _, err) = s.run(
        &[
            "deliver",
            "--from",
            "bob@example.net",
            "--rcpt",
            "alice@example.org",
        ],
        Some(CHAT),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        s.dir
            .path()
            .join("state/mail/example.org/alice/Maildir/new")
            .read_dir()
            .expect("new/")
            .next()
            .is_some()
    );
    let (code, _, err) = s.run(&["deliver", "--rcpt", "../evil@example.org"], Some(CHAT));
    assert_eq!(code, 67, "{err}");
    let reject = Setup::new("[policy]\nscript = \"@DIR@/reject.sieve\"\n");
    let policy = reject.dir.path().join("reject.sieve");
    std::fs::write(&policy, "require \"reject\"; reject \"not here\";").expect("policy");
    let (code, _, err) = reject.run(&["deliver", "--rcpt", "alice@example.org"], Some(CHAT));
    assert_eq!(code, 65, "{err}");
    let down = Setup::new(
        "[delivery]\nbackend = \"dovecot\"\n[delivery.dovecot]\nlmtp = \"/nonexistent/lmtp\"\n",
    );
    let (code, _, err) = down.run(&["deliver", "--rcpt", "alice@example.org"], Some(CHAT));
    assert_eq!(code, 75, "{err}");
}

#[test]
fn user_get_and_set() {
    let s = Setup::new("");
    let (_, out, _) = s.run(&["user", "get", "alice+x@Example.org"], None);
    assert!(out.contains("enabled=no (default)"), "{out}");
    let (code, _, err) = s.run(
        &["user", "set", "alice@example.org", "message-filter=weird"],
        None,
    );
    assert_eq!(code, 64, "{err}");
    let (code, _, _) = s.run(
        &[
            "user",
            "set",
            "alice@example.org",
            "enabled=yes",
            "message-filter=seen",
        ],
        None,
    );
    assert_eq!(code, 0);
    let (_, out, _) = s.run(&["user", "get", "alice@example.org"], None);
    assert!(
        out.contains("enabled=yes\n") && out.contains("message-filter=seen\n"),
        "{out}"
    );
}

/// The dict key of a WebPush entry of alice's (any INBOX GUID will do).
fn webpush_key(name: &str) -> String {
    format!(
        "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/webpush/{name}"
    )
}

/// One dict transaction setting `key` for alice; returns coid's answer.
fn dict_set(dict: &mut DictClient, id: u32, key: &str, value: &str) -> String {
    dict.send(format!("B{id}\talice@example.org\nS{id}\t{key}\t{value}\nC{id}\n").as_bytes());
    String::from_utf8(dict.line().expect("commit answer")).expect("utf-8")
}

/// `coid push list` lines as JSON.
fn push_list(coid: &Coid) -> Vec<serde_json::Value> {
    let (code, out, err) = coid.cli(&["push", "list", "alice@example.org"], None);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn push_list_test_delete_and_vapid() {
    let receiver = PushReceiver::start(&[(
        "dev",
        vec![
            Answer::Status(201),
            Answer::Status(201),
            Answer::Status(201),
            Answer::Status(410),
        ],
    )]);
    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
    opts.backend = "maildir".into();
    opts.extra_toml = "[push]\nallow_private_endpoints = true\n".into();
    let coid = Coid::start(opts);
    for sub in ["list", "delete", "test", "vapid"] {
        let (code, out, _) = coid.cli(&["push", sub, "--help"], None);
        assert_eq!(code, 0, "push {sub} --help");
        assert!(out.contains("Usage: coid push"), "{out}");
    }

    // The VAPID key: the same every time, and what the dict serves.
    let (code, pem, err) = coid.cli(&["push", "vapid"], None);
    assert_eq!(code, 0, "{err}");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    assert_eq!(coid.cli(&["push", "vapid"], None).1, pem);
    let mut dict = DictClient::connect(&coid);
    dict.send(b"H3\t2\t0\t\tcoid\n");
    dict.send(format!("L{}\talice@example.org\n", webpush_key("vapid")).as_bytes());
    let served = String::from_utf8(dict.line().expect("lookup")).expect("utf-8");
    assert_eq!(served.replace("\u{1}n", "\n"), format!("O{pem}"));

    // A subscription over the dict, validated with the token pushed to the receiver.
    let json = subscription_json(&receiver.keys("dev"), "chat");
    assert_eq!(
        dict_set(
            &mut dict,
            1,
            &webpush_key("subscriptions/dev-phone-1"),
            &json
        ),
        "O1"
    );
    let seen = receiver.wait_for_requests(1, Duration::from_secs(15));
    let plain: serde_json::Value =
        serde_json::from_str(seen[0]["plaintext"].as_str().expect("decrypted")).expect("json");
    let token = plain["validation"].as_str().expect("token");
    let listed = wait_until(Duration::from_secs(10), || {
        let list = push_list(&coid);
        (list.len() == 1 && list[0]["pending"] == 0).then_some(list)
    })
    .expect("listed with nothing pending");
    assert_eq!(
        (listed[0]["id"].as_str(), &listed[0]["validated"]),
        (Some("dev-phone-1"), &serde_json::Value::Bool(false))
    );
    let (code, _, err) = coid.cli(&["push", "test", "alice@example.org"], None);
    assert_eq!(code, 67, "no validated subscription yet: {err}");
    let validate = webpush_key("subscriptions/dev-phone-1/validate");
    assert_eq!(dict_set(&mut dict, 2, &validate, token), "O2");
    assert_eq!(push_list(&coid)[0]["validated"], true);

    // A message delivered by `coid deliver` (another process) queues its push in the
    // state store; the serving coid sends it (within its 5 s poll).
    coid.user_set("alice@example.org", &["enabled=yes"]);
    let rcpt = ["deliver", "--rcpt", "alice@example.org"];
    let (code, _, err) = coid.cli(&rcpt, Some(CHAT));
    assert_eq!(code, 0, "{err}");
    let seen = receiver.wait_for_requests(2, Duration::from_secs(15));
    let push: serde_json::Value =
        serde_json::from_str(seen[1]["plaintext"].as_str().expect("decrypted")).expect("json");
    assert_eq!(push["msg-id"], "chat$1@example.net", "{push:#}");

    // A test push is delivered; the next one finds the subscription gone (410).
    let (code, out, err) = coid.cli(&["push", "test", "alice@example.org"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "dev-phone-1: delivered (HTTP 201)\n");
    let seen = receiver.wait_for_requests(3, Duration::from_secs(5));
    assert!(
        seen[2]["plaintext"]
            .as_str()
            .is_some_and(|p| p.contains("coid push test")),
        "{:#}",
        seen[2]
    );
    let (code, out, _) = coid.cli(&["push", "test", "alice@example.org"], None);
    assert_eq!(code, 65, "{out}");
    assert!(
        out.contains("dev-phone-1: gone (HTTP 410)") && out.contains("deleted"),
        "{out}"
    );
    assert!(push_list(&coid).is_empty());

    // delete: once, then it is gone.
    assert_eq!(
        dict_set(
            &mut dict,
            3,
            &webpush_key("subscriptions/dev-phone-2"),
            &json
        ),
        "O3"
    );
    let delete = ["push", "delete", "alice@example.org", "dev-phone-2"];
    let (code, out, err) = coid.cli(&delete, None);
    assert_eq!((code, out.as_str()), (0, "deleted dev-phone-2\n"), "{err}");
    let (code, _, err) = coid.cli(&delete, None);
    assert_eq!(code, 65, "{err}");
    assert!(push_list(&coid).is_empty());
}

/// Admin commands started as root act as `[service] user`, as `coid serve` does: a
/// database they create belongs to coid (a root-owned one would be read-only for the
/// service, which then answers 4xx to everything).
#[test]
fn admin_commands_as_root_create_the_state_as_the_service_user() {
    use std::os::unix::fs::MetadataExt;
    let dir = common::make_run_dir("coid-cli-owner-");
    let state = dir.path().join("state");
    let config = dir.path().join("coid.toml");
    let text = format!(
        "[lmtp]\ntcp = [\"127.0.0.1:0\"]\n[state]\ndir = \"{}\"\n[delivery]\nbackend = \"maildir\"\n\
         [service]\nuser = \"coid\"\n",
        state.display()
    );
    std::fs::write(&config, text).expect("config");
    let (code, out, err) = run_cli(
        &config,
        &["user", "set", "a@example.org", "enabled=yes"],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let coid_uid = std::process::Command::new("id")
        .args(["-u", "coid"])
        .output()
        .expect("id -u coid");
    let coid_uid: u32 = String::from_utf8_lossy(&coid_uid.stdout)
        .trim()
        .parse()
        .expect("the coid account exists (tests/install-packages.sh)");
    for path in [state.clone(), state.join("coid.sqlite")] {
        let meta = std::fs::metadata(&path).expect("created");
        assert_eq!(
            meta.uid(),
            coid_uid,
            "{} owned by {}",
            path.display(),
            meta.uid()
        );
    }
    let (code, out, _) = run_cli(&config, &["user", "get", "a@example.org"], None);
    assert_eq!(code, 0);
    assert!(out.contains("enabled=yes\n"), "{out}");
}

/// Runs the coid binary with exactly `args` (no `--config` added) and `env`.
fn coid_raw(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coid"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running coid");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--config` is a global option: before the command, after it, after a nested
/// command's name or after its arguments, all the same.
#[test]
fn config_is_accepted_in_any_position() {
    let s = Setup::new("");
    let config = s.dir.path().join("coid.toml").display().to_string();
    let c = config.as_str();
    let set = ["user", "set", "alice@example.org", "enabled=yes"];
    for args in [
        vec![
            "--config",
            c,
            "user",
            "set",
            "alice@example.org",
            "enabled=yes",
        ],
        vec![
            "user",
            "--config",
            c,
            "set",
            "alice@example.org",
            "enabled=yes",
        ],
        vec![
            "user",
            "set",
            "--config",
            c,
            "alice@example.org",
            "enabled=yes",
        ],
        [&set[..], &["--config", c]].concat(),
        [&set[..], &["-c", c]].concat(),
    ] {
        let (code, _, err) = coid_raw(&args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    for args in [
        vec!["-c", c, "check-config"],
        vec!["check-config", "-c", c],
        vec!["--config", c, "user", "get", "alice@example.org"],
        vec!["user", "get", "alice@example.org", "--config", c],
        vec!["push", "list", "alice@example.org", "--config", c],
    ] {
        let (code, out, err) = coid_raw(&args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!out.is_empty() || args.contains(&"push"), "{args:?}");
    }
    let (code, _, err) = coid_raw(&["user", "get", "alice@example.org"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--config FILE is required"), "{err}");
}

/// `coid user set` takes a value only if IMAP SETMETADATA would: `enabled` is `yes`
/// or nil, never "no" (which no COI client writes), with the dict path's words.
#[test]
fn user_set_follows_the_metadata_rules() {
    let s = Setup::new("");
    for (pair, words) in [
        (
            "enabled=no",
            "invalid value for /private/vendor/vendor.dovecot/coi/config/enabled: \"no\"",
        ),
        (
            "message-filter=sometimes",
            "invalid value for /private/vendor/vendor.dovecot/coi/config/message-filter",
        ),
        ("mailbox-root=Chat", "it is read-only"),
    ] {
        let (code, _, err) = s.run(&["user", "set", "alice@example.org", pair], None);
        assert_eq!(code, 64, "{pair}: {err}");
        assert!(err.contains(words), "{pair}: {err}");
    }
    let (_, out, _) = s.run(&["user", "get", "alice@example.org"], None);
    assert!(
        out.contains("enabled=no (default)"),
        "nothing stored: {out}"
    );
    let (code, _, err) = s.run(&["user", "set", "alice@example.org", "enabled=nil"], None);
    assert_eq!(code, 0, "{err}");
}

/// `coid check-config` refuses coid's seen filter on an mbox mail store (the move
/// would leave every read chat twice), reading Dovecot's settings with `doveconf -n`:
/// here a stand-in doveconf first on PATH.
#[test]
fn check_config_refuses_the_seen_filter_on_mbox() {
    let s = Setup::new("");
    let config = s.dir.path().join("coid.toml").display().to_string();
    let bin = s.dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin dir");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let doveconf = |settings: &str| {
        use std::os::unix::fs::PermissionsExt;
        let script = bin.join("doveconf");
        std::fs::write(&script, format!("#!/bin/sh\ncat <<'EOF'\n{settings}EOF\n"))
            .expect("doveconf");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    };
    let seen =
        "plugin {\n  imapsieve_mailbox1_before = file:/etc/coid/dovecot/coid-seen.sieve\n}\n";
    let env = [("PATH", path.clone())];
    doveconf(&format!(
        "mail_location = mbox:~/mail:INBOX=/var/mail/%u\n{seen}"
    ));
    let (code, out, err) = coid_raw(&["check-config", "--config", &config], &env);
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("mail_location = mbox:"), "{err}");
    assert!(err.contains("seen filter"), "{err}");
    assert!(!out.contains("OK"), "no OK when a problem is found: {out}");
    doveconf(&format!("mail_location = maildir:~/Maildir\n{seen}"));
    let (code, _, err) = coid_raw(&["check-config", "--config", &config], &env);
    assert_eq!(code, 0, "{err}");
    doveconf("mail_location = mbox:~/mail:INBOX=/var/mail/%u\n");
    let (code, _, err) = coid_raw(&["check-config", "--config", &config], &env);
    assert_eq!(code, 0, "no seen filter: {err}");
}

/// `coid doctor` through the binary: a running coid on this test machine, whose
/// Postfix (if any) delivers nowhere near it, so the report has errors: exit 2, the
/// coid checks pass, and `--json` is one object with that status. A config that does
/// not load is one error with `check-config` as its fix. (The correct host and each
/// break are in packaging/check-booted.sh; the parsing in the unit tests.)
#[test]
fn doctor_reports_and_exits_by_its_worst_finding() {
    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
    opts.backend = "maildir".into();
    let coid = Coid::start(opts);
    let (code, out, err) = coid.cli(&["doctor"], None);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("ok      coid: coid serves (GET /health: 200)"),
        "{out}"
    );
    assert!(out.contains("database schema version"), "{out}");
    assert!(out.contains("        fix: "), "{out}");
    assert!(out.trim_end().ends_with(" ok"), "{out}");
    let (code, out, _) = coid.cli(&["doctor", "--json"], None);
    assert_eq!(code, 2);
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["status"], "error", "{out}");
    assert!(
        report["findings"].as_array().is_some_and(|f| f.len() > 5),
        "{out}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[lmtp]\nmax_connections = 0\n").expect("write");
    let (code, out, _) = run_cli(&bad, &["doctor"], None);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("error   coid: coid.toml: ") && out.contains("fix: coid check-config"),
        "{out}"
    );
}

/// `coid health` asks the running coid's /health (no curl needed); `coid reload PID`
/// is SIGHUP to that coid only (the unit's ExecReload, no kill(1) needed).
#[test]
fn health_and_reload_without_external_programs() {
    let mut opts = CoidOpts::dovecot("/nonexistent/lmtp");
    opts.backend = "maildir".into();
    let mut coid = Coid::start(opts);
    let (code, out, err) = coid.cli(&["health"], None);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");

    let pid = coid.pid().expect("running").to_string();
    let (code, _, err) = coid_raw(&["reload", &pid], &[]);
    assert_eq!(code, 0, "{err}");
    let reloaded = wait_until(Duration::from_secs(10), || {
        coid.plain_log()
            .contains("reloaded: new sessions use the new config")
            .then_some(())
    });
    assert!(reloaded.is_some(), "{}", coid.plain_log());
    for (pid, code) in [("0", 64), ("1", 64), ("-5", 64)] {
        let (got, _, err) = coid_raw(&["reload", "--", pid], &[]);
        assert_eq!(got, code, "reload {pid}: {err}");
    }
    // Not coid: this test's own process is left alone.
    let me = std::process::id().to_string();
    let (code, _, err) = coid_raw(&["reload", &me], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not coid"), "{err}");

    coid.stop();
    let (code, _, err) = coid.cli(&["health"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/health"), "{err}");
}
