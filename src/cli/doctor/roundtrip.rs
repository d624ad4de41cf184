//! `coid doctor --send-test ADDR`: one plain message through the real path (Postfix's
//! `sendmail`, so Postfix → coid → Dovecot), found in the user's mailbox with
//! `doveadm search`/`doveadm fetch` and removed with `doveadm expunge`. Needs root
//! (doveadm for any user). The message has a Message-ID of its own, so only it is
//! removed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::doctor::{Area, Finding};
use crate::users::UserMap;

/// How long to look for the message in Dovecot.
const WAIT: Duration = Duration::from_secs(30);

/// Sends, finds and removes the test message; one finding.
pub fn run(config: &Config, addr: &str) -> Finding {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("coid-doctor-{nanos}-{}@localhost", std::process::id());
    let message = format!(
        "From: coid doctor <postmaster@localhost>\r\nTo: <{addr}>\r\n\
         Subject: coid doctor test {id}\r\nMessage-ID: <{id}>\r\n\r\n\
         A test message from coid doctor --send-test; it removes it again.\r\n"
    );
    if let Err(why) = sendmail(addr, &message) {
        return Finding::error(
            Area::Roundtrip,
            format!("sendmail -i -- {addr}: {why}"),
            "is Postfix installed and running? (systemctl status postfix)",
        );
    }
    let user = UserMap::new(&config.users).resolve(addr);
    let mut candidates = vec![addr.to_owned(), user.username.clone(), user.local.clone()];
    candidates.dedup();
    let started = Instant::now();
    while started.elapsed() < WAIT {
        for who in &candidates {
            let mailboxes = find(who, &id);
            if let Some(mailbox) = mailboxes.first() {
                let secs = started.elapsed().as_secs_f32();
                return match expunge(who, mailbox, &id) {
                    Ok(()) => Finding::ok(
                        Area::Roundtrip,
                        format!(
                            "test message to {addr} sent with sendmail, found in Dovecot ({who}, {mailbox}) after {secs:.1} s, removed"
                        ),
                    ),
                    Err(why) => Finding::warning(
                        Area::Roundtrip,
                        format!(
                            "test message to {addr} found in {who}'s {mailbox} after {secs:.1} s, but not removed: {why}"
                        ),
                        format!(
                            "doveadm expunge -u {who} mailbox {mailbox} header message-id {id}"
                        ),
                    ),
                };
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Finding::error(
        Area::Roundtrip,
        format!("test message to {addr} (Message-ID <{id}>) not in Dovecot after {WAIT:?}"),
        format!("postqueue -p; journalctl -u coid -u postfix -g {id}"),
    )
}

/// Hands the message to Postfix's sendmail.
fn sendmail(addr: &str, message: &str) -> std::io::Result<()> {
    let mut child = Command::new("sendmail")
        .args(["-i", "--", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The mailboxes of `user` holding the message (`doveadm fetch ... mailbox`).
fn find(user: &str, id: &str) -> Vec<String> {
    let Ok(out) = Command::new("doveadm")
        .args(["fetch", "-u", user, "mailbox", "header", "message-id", id])
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("mailbox: "))
        .map(str::to_owned)
        .collect()
}

/// Removes the message from `mailbox`.
fn expunge(user: &str, mailbox: &str, id: &str) -> std::io::Result<()> {
    let out = Command::new("doveadm")
        .args([
            "expunge",
            "-u",
            user,
            "mailbox",
            mailbox,
            "header",
            "message-id",
            id,
        ])
        .output()?;
    if out.status.success() && find(user, id).is_empty() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
