//! Dovecot checks over sample `doveconf -n` texts: Debian 12's (2.3) and 13's (2.4)
//! with coid's snippets, as check-booted.sh sets them up, and each broken one way.

use std::time::{Duration, SystemTime};

use super::*;
use crate::doctor::Severity;

/// Debian 12 with coid.conf included and the local-users edit (2.3 syntax).
const D23: &str = "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf
mail_location = maildir:~/Maildir
mail_attribute_dict = proxy:/run/coid/dict:coid
mail_access_groups = coid
namespace inbox {
  inbox = yes
  separator = /
  mailbox COI/Chats {
    auto = subscribe
  }
}
plugin {
  imapsieve_mailbox1_before = file:/etc/coid/dovecot/coid-seen.sieve
  sieve_before = /etc/coid/dovecot/coid.sieve
}
protocols = \" imap lmtp\"
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    group = postfix
    mode = 0600
    user = postfix
  }
}
protocol lmtp {
  auth_username_format = %{if;%d;eq;mail.example.org;%Ln;%Lu}
  mail_plugins = \" sieve\"
}
protocol imap {
  imap_capability = +COI WEBPUSH XDELTAPUSH
  imap_metadata = yes
  mail_plugins = \" imap_sieve\"
}
";

/// Debian 13 with coid's 2.4 snippets (2.4 syntax).
const D24: &str = "# 2.4.1-4 (7d8c0e5759): /etc/dovecot/dovecot.conf
mail_driver = maildir
mail_path = ~/Maildir
mail_attribute {
  dict proxy {
    dict_proxy_socket_path = /run/coid/dict
    dict_proxy_name = coid
  }
}
sieve_script coid {
  type = before
  driver = file
  path = /etc/coid/dovecot/coid.sieve
}
mailbox INBOX {
  sieve_script coid-seen {
    path = /etc/coid/dovecot/coid-seen.sieve
  }
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
  }
}
protocol lmtp {
  auth_username_format = %{user | lower | regexp('^(.*)@mail[.]example[.]org$', '\\\\1')}
  mail_plugins {
    sieve = yes
  }
}
protocol imap {
  imap_metadata = yes
  imap_capability {
    COI = yes
    WEBPUSH = yes
    XDELTAPUSH = yes
  }
}
";

fn compiled(paths: &[String]) -> Vec<Script> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
    paths
        .iter()
        .map(|p| Script {
            path: p.clone(),
            source: Some(t),
            binary: Some(t + Duration::from_secs(1)),
        })
        .collect()
}

fn run(text: &str, lmtp: &str, scripts: &[Script]) -> Vec<Finding> {
    check(
        text,
        &Expect {
            lmtp,
            dict_socket: "/run/coid/dict",
            local_users: true,
            scripts,
        },
    )
}

fn problems(findings: &[Finding]) -> Vec<&Finding> {
    findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect()
}

#[test]
fn parse_keeps_sections() {
    let all = parse(D24);
    let dict = all
        .iter()
        .find(|s| s.key == "dict_proxy_socket_path")
        .expect("dict");
    assert_eq!(dict.sections, ["mail_attribute", "dict proxy"]);
    assert_eq!(dict.value, "/run/coid/dict");
    assert_eq!(
        coid_scripts(D23),
        [
            "/etc/coid/dovecot/coid-seen.sieve",
            "/etc/coid/dovecot/coid.sieve"
        ]
    );
    assert_eq!(
        coid_scripts(D24),
        [
            "/etc/coid/dovecot/coid.sieve",
            "/etc/coid/dovecot/coid-seen.sieve"
        ]
    );
}

#[test]
fn debian_hosts_with_coid_are_fine() {
    for text in [D23, D24] {
        let scripts = compiled(&coid_scripts(text));
        let findings = run(text, "/run/dovecot/lmtp", &scripts);
        assert!(problems(&findings).is_empty(), "{findings:#?}");
        let findings = run(text, "/var/spool/postfix/private/dovecot-lmtp", &scripts);
        assert!(problems(&findings).is_empty(), "{findings:#?}");
    }
}

/// One broken setting at a time: the finding names it and its fix.
#[test]
fn each_break_is_named() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (D23, "  imap_metadata = yes\n", "", "imap_metadata = no"),
        (D24, "  imap_metadata = yes\n", "", "imap_metadata = no"),
        (D23, "+COI WEBPUSH XDELTAPUSH", "+XDELTAPUSH", "lacks COI"),
        (D24, "    WEBPUSH = yes\n", "", "lacks WEBPUSH"),
        (
            D23,
            "proxy:/run/coid/dict:coid",
            "file:/var/lib/dovecot/attr",
            "not coid's dict socket",
        ),
        (
            D24,
            "dict_proxy_socket_path = /run/coid/dict",
            "dict_proxy_socket_path = /run/x",
            "not coid's dict socket",
        ),
        (
            D23,
            "  mail_plugins = \" sieve\"\n",
            "",
            "no sieve in mail_plugins",
        ),
        (D24, "    sieve = yes\n", "", "no sieve in mail_plugins"),
        (
            D23,
            "%{if;%d;eq;mail.example.org;%Ln;%Lu}",
            "%Lu",
            "keeps the domain",
        ),
        (
            D23,
            "protocols = \" imap lmtp\"",
            "protocols = \" imap\"",
            "no LMTP server",
        ),
        (
            D23,
            "mail_location = maildir:~/Maildir",
            "mail_location = mbox:~/mail:INBOX=/var/mail/%u",
            "twice",
        ),
        (D24, "mail_driver = maildir", "mail_driver = mbox", "twice"),
    ];
    for (base, from, to, named) in cases {
        assert!(base.contains(from), "{from}");
        let text = base.replace(from, to);
        let findings = run(&text, "/run/dovecot/lmtp", &compiled(&coid_scripts(&text)));
        let bad = problems(&findings);
        assert!(!bad.is_empty(), "{from} -> {to}: nothing found");
        assert!(bad.iter().all(|f| f.fix.is_some()), "{bad:#?}");
        assert!(
            bad.iter().any(|f| f.what.contains(named)),
            "{from} -> {to}: {bad:#?}"
        );
    }
    let no_xdp = D23.replace("+COI WEBPUSH XDELTAPUSH", "+COI WEBPUSH");
    let bad = run(
        &no_xdp,
        "/run/dovecot/lmtp",
        &compiled(&coid_scripts(&no_xdp)),
    );
    assert_eq!(problems(&bad).len(), 1);
    assert_eq!(problems(&bad)[0].severity, Severity::Warning);
}

#[test]
fn listener_and_scripts() {
    let scripts = compiled(&coid_scripts(D23));
    let findings = run(D23, "/run/dovecot/elsewhere", &scripts);
    let f = problems(&findings)[0];
    assert!(
        f.what
            .starts_with("no Dovecot LMTP listener at /run/dovecot/elsewhere"),
        "{f:?}"
    );
    let findings = run(D23, "127.0.0.1:24", &scripts);
    assert!(
        problems(&findings)[0]
            .what
            .starts_with("no Dovecot LMTP listener at 127.0.0.1:24")
    );
    let tcp = D23.replace(
        "service lmtp {\n",
        "service lmtp {\n  inet_listener lmtp {\n    port = 24\n  }\n",
    );
    assert!(problems(&run(&tcp, "127.0.0.1:24", &scripts)).is_empty());

    let mut stale = scripts.clone();
    stale[1].binary = stale[1].source.map(|t| t - Duration::from_secs(5));
    let bad = run(D23, "/run/dovecot/lmtp", &stale);
    assert_eq!(problems(&bad).len(), 1, "{bad:#?}");
    assert!(problems(&bad)[0].what.contains("coid.svbin is older than"));
    assert_eq!(
        problems(&bad)[0].fix.as_deref(),
        Some("sievec /etc/coid/dovecot/coid.sieve")
    );
    let mut missing = scripts.clone();
    missing[0].binary = None;
    assert!(
        problems(&run(D23, "/run/dovecot/lmtp", &missing))[0]
            .what
            .contains("coid-seen.svbin is missing")
    );
    let none = D23.replace("  sieve_before = /etc/coid/dovecot/coid.sieve\n", "");
    let bad = run(&none, "/run/dovecot/lmtp", &compiled(&coid_scripts(&none)));
    assert!(
        problems(&bad)[0]
            .what
            .starts_with("coid.sieve is not a sieve_before script")
    );
    assert_eq!(
        problems(&run("", "/run/dovecot/lmtp", &[]))[0].severity,
        Severity::Error
    );
}

#[test]
fn seen_filter_on_mbox_is_refused() {
    const SEEN_23: &str =
        "plugin {\n  imapsieve_mailbox1_before = file:/etc/coid/dovecot/coid-seen.sieve\n}\n";
    const SEEN_24: &str =
        "sieve_script coid-seen {\n  path = /etc/coid/dovecot/coid-seen.sieve\n}\n";
    let debian_23 = format!("mail_location = mbox:~/mail:INBOX=/var/mail/%u\n{SEEN_23}");
    let problem = seen_filter_on_mbox(&debian_23).expect("refused");
    assert!(
        problem.starts_with("mail_location = mbox:~/mail"),
        "{problem}"
    );
    assert!(problem.contains("twice"), "{problem}");
    let debian_24 = format!("mail_driver = mbox\nmail_path = ~/mail\n{SEEN_24}");
    assert!(seen_filter_on_mbox(&debian_24).is_some());
    let maildir = format!("mail_location = maildir:~/Maildir\n{SEEN_23}");
    assert_eq!(seen_filter_on_mbox(&maildir), None);
    let maildir_24 = format!("mail_driver = maildir\n{SEEN_24}");
    assert_eq!(seen_filter_on_mbox(&maildir_24), None);
    let no_seen = "mail_location = mbox:~/mail:INBOX=/var/mail/%u\nsieve_before = file:/etc/coid/dovecot/coid.sieve\n";
    assert_eq!(seen_filter_on_mbox(no_seen), None);
    assert_eq!(seen_filter_on_mbox(""), None);
}
