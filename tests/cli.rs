//! The command line as an operator uses it: check-config (every problem, exit 78),
//! explain (JSON decision), deliver (LDA mode with sysexits codes) and user get/set,
//! with the embedded Maildir backend (no mail server needed).

mod common;

use common::coid::run_cli;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "[lmtp]\ntcp = [\"127.0.0.1:0\"]\n[state]\ndir = \"{}\"\n[delivery.maildir]\nfsync = false\n{extra}",
            dir.path().join("state").display()
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
    let (code, out, _) = good.run(&["check-config", "--config", ""], None);
    assert_eq!(code, 0, "{out}");
    let bad = Setup::new(
        "[coi]\nmessage_filter = \"sometimes\"\n[policy]\nscript = \"/nonexistent/policy.sieve\"\n[users]\nusername = \"uid\"\n[dict]\nsocket = \"run/dict\"\n",
    );
    let (code, _, err) = bad.run(&["check-config", "--config", ""], None);
    assert_eq!(code, 78, "{err}");
    for needle in [
        "message_filter",
        "users.username",
        "/nonexistent/policy.sieve",
        "dict.socket",
    ] {
        assert!(err.contains(needle), "missing {needle} in {err}");
    }
    let typo = Setup::new("[lmtp]\nmax_conections = 3\n");
    let (code, _, err) = typo.run(&["check-config", "--config", ""], None);
    assert_eq!(code, 78, "{err}");
}

#[test]
fn explain_prints_the_decision_as_json() {
    let s = Setup::new("");
    let (code, _, err) = s.run(
        &[
            "user",
            "--config",
            "",
            "set",
            "alice@example.org",
            "enabled=yes",
            "message-filter=active",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s.run(
        &[
            "explain",
            "--config",
            "",
            "--rcpt",
            "alice@example.org",
            "bob@example.org",
        ],
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
            "--config",
            "",
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
    let (code, _, err) = s.run(
        &["deliver", "--config", "", "--rcpt", "../evil@example.org"],
        Some(CHAT),
    );
    assert_eq!(code, 67, "{err}");
    let reject = Setup::new("[policy]\nscript = \"\"\n");
    let policy = reject.dir.path().join("reject.sieve");
    std::fs::write(&policy, "require \"reject\"; reject \"not here\";").expect("policy");
    let cfg = format!(
        "[lmtp]\ntcp = [\"127.0.0.1:0\"]\n[state]\ndir = \"{}\"\n[policy]\nscript = \"{}\"\n",
        reject.dir.path().join("state").display(),
        policy.display()
    );
    std::fs::write(reject.dir.path().join("coid.toml"), cfg).expect("config");
    let (code, _, err) = reject.run(
        &["deliver", "--config", "", "--rcpt", "alice@example.org"],
        Some(CHAT),
    );
    assert_eq!(code, 65, "{err}");
    let down = Setup::new(
        "[delivery]\nbackend = \"dovecot\"\n[delivery.dovecot]\nlmtp = \"/nonexistent/lmtp\"\n",
    );
    let (code, _, err) = down.run(
        &["deliver", "--config", "", "--rcpt", "alice@example.org"],
        Some(CHAT),
    );
    assert_eq!(code, 75, "{err}");
}

#[test]
fn user_get_and_set() {
    let s = Setup::new("");
    let (_, out, _) = s.run(
        &["user", "--config", "", "get", "alice+x@Example.org"],
        None,
    );
    assert!(out.contains("enabled=no (default)"), "{out}");
    let (code, _, err) = s.run(
        &[
            "user",
            "--config",
            "",
            "set",
            "alice@example.org",
            "message-filter=weird",
        ],
        None,
    );
    assert_eq!(code, 64, "{err}");
    let (code, _, _) = s.run(
        &[
            "user",
            "--config",
            "",
            "set",
            "alice@example.org",
            "enabled=yes",
            "message-filter=seen",
        ],
        None,
    );
    assert_eq!(code, 0);
    let (_, out, _) = s.run(&["user", "--config", "", "get", "alice@example.org"], None);
    assert!(
        out.contains("enabled=yes\n") && out.contains("message-filter=seen\n"),
        "{out}"
    );
}
