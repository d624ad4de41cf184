//! `coid check-config`: the config and its policy ([`super::build::config_problems`]),
//! then one check of this host's Dovecot that coid's own config cannot show: coid's
//! `seen` message filter (`92-coid-seen.conf`) on an mbox mail store.
//!
//! The seen filter moves a read chat with `doveadm move` (`coid-seen-move`). On mbox
//! that move does not work as a move (the copy lands in `COI/Chats`, the original
//! stays in INBOX: each chat is then there twice), so the setup is refused here
//! rather than found by users. Dovecot's settings come from `doveconf -n` (read only);
//! without doveconf, or when it fails (not run as root), this check is skipped.

use std::path::Path;
use std::process::Command;

use super::{build, exit, logging};

/// Runs `coid check-config` on the config at `path`; returns the exit code. "OK" only
/// when neither the config nor this host's Dovecot has a problem; otherwise every
/// problem, each on its own error line.
pub fn run(path: &Path) -> u8 {
    let mut problems = match build::config_problems(path) {
        Ok(problems) => problems,
        Err(code) => return code,
    };
    let dovecot = dovecot_settings().and_then(|text| seen_filter_on_mbox(&text));
    if problems.is_empty() && dovecot.is_none() {
        println!("{}: OK", path.display());
        return exit::OK;
    }
    let file = path.display();
    problems
        .iter_mut()
        .for_each(|p| *p = format!("{file}: {p}"));
    problems.extend(dovecot.map(|p| format!("Dovecot (doveconf -n): {p}")));
    for problem in &problems {
        logging::print_error(problem);
    }
    exit::CONFIG
}

/// `doveconf -n`'s output, or `None` when there is no doveconf or it failed.
fn dovecot_settings() -> Option<String> {
    let out = Command::new("doveconf").arg("-n").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why Dovecot's settings (`doveconf -n`) are refused: coid's seen filter is
/// included while mail is stored as mbox (2.3 `mail_location = mbox:…`, 2.4
/// `mail_driver = mbox`).
fn seen_filter_on_mbox(doveconf: &str) -> Option<String> {
    let lines = || doveconf.lines().map(str::trim);
    let mbox = lines().find(|line| {
        setting(line, "mail_location").is_some_and(|v| v.starts_with("mbox:"))
            || setting(line, "mail_driver") == Some("mbox")
    })?;
    if !lines().any(|line| !line.starts_with('#') && line.contains("coid-seen")) {
        return None;
    }
    Some(format!(
        "{mbox}, and coid's seen filter (92-coid-seen.conf) is included: on mbox the \
         seen filter leaves a copy of every chat it moves in INBOX (each chat is then \
         there twice). Store mail as Maildir (or sdbox/mdbox), or include only \
         90-coid.conf and 91-coid-metadata.conf instead of coid.conf and keep \
         message-filter to none or active"
    ))
}

/// The value of `name = value` on `line`, if that is the setting on it.
fn setting<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (key, value) = line.split_once('=')?;
    (key.trim() == name).then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEEN_23: &str =
        "plugin {\n  imapsieve_mailbox1_before = file:/etc/coid/dovecot/coid-seen.sieve\n}\n";
    const SEEN_24: &str =
        "sieve_script coid-seen {\n  path = /etc/coid/dovecot/coid-seen.sieve\n}\n";

    #[test]
    fn seen_filter_on_mbox_is_refused() {
        let debian_23 = format!("mail_location = mbox:~/mail:INBOX=/var/mail/%u\n{SEEN_23}");
        let problem = seen_filter_on_mbox(&debian_23).expect("refused");
        assert!(
            problem.starts_with("mail_location = mbox:~/mail"),
            "{problem}"
        );
        assert!(problem.contains("twice"), "{problem}");
        let debian_24 = format!("mail_driver = mbox\nmail_path = ~/mail\n{SEEN_24}");
        assert!(seen_filter_on_mbox(&debian_24).is_some());
    }

    #[test]
    fn maildir_or_no_seen_filter_is_fine() {
        let maildir = format!("mail_location = maildir:~/Maildir\n{SEEN_23}");
        assert_eq!(seen_filter_on_mbox(&maildir), None);
        let maildir_24 = format!("mail_driver = maildir\n{SEEN_24}");
        assert_eq!(seen_filter_on_mbox(&maildir_24), None);
        let no_seen = "mail_location = mbox:~/mail:INBOX=/var/mail/%u\nsieve_before = file:/etc/coid/dovecot/coid.sieve\n";
        assert_eq!(seen_filter_on_mbox(no_seen), None);
        assert_eq!(seen_filter_on_mbox(""), None);
    }
}
