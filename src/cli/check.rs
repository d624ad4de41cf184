//! `coid check-config`: the config and its policy ([`super::build::config_problems`]),
//! then one check of this host's Dovecot that coid's own config cannot show: coid's
//! `seen` message filter (`92-coid-seen.conf`) on an mbox mail store.
//!
//! The seen filter moves a read chat with `doveadm move` (`coid-seen-move`). On mbox
//! that move does not work as a move (the copy lands in `COI/Chats`, the original
//! stays in INBOX: each chat is then there twice), so the setup is refused here
//! rather than found by users (the check is `crate::doctor::dovecot`'s, which `coid doctor`
//! runs too). Dovecot's settings come from `doveconf -n` (read only);
//! without doveconf, or when it fails (not run as root), this check is skipped.

use std::path::Path;
use std::process::Command;

use super::{build, exit, logging};
use crate::doctor::dovecot::seen_filter_on_mbox;

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
pub(crate) fn dovecot_settings() -> Option<String> {
    let out = Command::new("doveconf").arg("-n").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
