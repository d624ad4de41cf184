//! `coid man` (hidden): prints the man page coid(8) of the whole command line as roff.
//!
//! The page is rendered from the same clap definitions as `--help` (with
//! `clap_mangen`). The Debian package ships the committed `packaging/coid.8`, so a
//! plain `cargo deb` needs no step before it; the test `committed_page_is_current`
//! keeps that file equal to this output (regenerate it with
//! `cargo run -q -- man > packaging/coid.8`). One page holds everything: the synopsis and options of every
//! command under COMMANDS (clap_mangen alone would point to coid-serve(8) and others,
//! which are not shipped), then what clap cannot know: signals, files, exit codes.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, exit};

/// EX_IOERR (sysexits(3)): standard output could not be written.
const IOERR: u8 = 74;

/// Man page section: system administration and daemons.
const SECTION: &str = "8";

/// Writes the page to standard output.
pub fn print() -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(&render()).and_then(|()| out.flush()) {
        Ok(()) => exit::OK,
        Err(err) => {
            eprintln!("coid: cannot write the man page: {err}");
            IOERR
        }
    }
}

/// The whole page, roff source.
pub fn render() -> Vec<u8> {
    let mut cmd = without_help(Cli::command())
        .disable_help_flag(true)
        .about(NAME_LINE);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .manual("System Administration");
    // Each clap_mangen part is a roff document of its own: the first keeps the
    // preamble, the others lose it (see `part`).
    let mut page = Vec::new();
    let _ = man.render_title(&mut page);
    page.extend(part(|w| man.render_name_section(w), true));
    page.extend(part(|w| man.render_synopsis_section(w), true));
    page.extend_from_slice(DESCRIPTION.as_bytes());
    page.extend(part(|w| man.render_options_section(w), true));
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in visible(&cmd) {
        command(&mut page, sub);
    }
    page.extend_from_slice(TRAILER.as_bytes());
    page.extend(part(|w| man.render_version_section(w), true));
    page
}

/// One command (and, below it, its own subcommands) as a `.SS` subsection: its
/// usage, what it does, its options.
fn command(page: &mut Vec<u8>, cmd: &clap::Command) {
    let name = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    page.extend_from_slice(format!(".SS \"{}\"\n", escape(name)).as_bytes());
    // Global options (`--config`) are described once, under OPTIONS, not again in
    // every command.
    let cmd = &without_globals(cmd);
    // clap's own usage, as in `--help`.
    let usage = cmd.clone().render_usage().to_string();
    for (i, line) in usage.lines().enumerate() {
        let line = line.trim_start_matches("Usage:").trim();
        if i > 0 {
            page.extend_from_slice(b".br\n");
        }
        page.extend_from_slice(format!("\\fB{}\\fR\n", escape(line)).as_bytes());
    }
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        page.extend_from_slice(b".PP\n");
        for line in about.to_string().lines() {
            page.extend_from_slice(format!("{}\n", escape(line)).as_bytes());
        }
    }
    if cmd.get_arguments().any(|arg| !arg.is_hide_set()) {
        let man = clap_mangen::Man::new(cmd.clone()).section(SECTION);
        page.extend(part(|w| man.render_options_section(w), false));
    }
    for sub in visible(cmd) {
        command(page, sub);
    }
}

/// `cmd` with the global options it inherited hidden.
fn without_globals(cmd: &clap::Command) -> clap::Command {
    let globals: Vec<clap::Id> = cmd
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .map(|arg| arg.get_id().clone())
        .collect();
    globals
        .into_iter()
        .fold(cmd.clone(), |cmd, id| cmd.mut_arg(id, |arg| arg.hide(true)))
}

/// The subcommands a reader may use: not hidden (this one), not clap's `help`.
fn visible(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
}

/// `cmd` without `-h/--help` in any command, nor the `help` subcommand: noise on a
/// man page, where every command would list them.
fn without_help(cmd: clap::Command) -> clap::Command {
    cmd.disable_help_subcommand(true)
        .mut_subcommands(|sub| without_help(sub).disable_help_flag(true))
}

/// One part rendered by clap_mangen, without the preamble every part repeats (the
/// `Aq` string definition, already in the title part) and, unless `headings`, without
/// its `.SH` heading: a command's synopsis and options are the body of its `.SS`
/// under COMMANDS. Writing into a Vec cannot fail; a part that did is left out.
fn part(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>, headings: bool) -> Vec<u8> {
    let mut roff = Vec::new();
    if render(&mut roff).is_err() {
        return Vec::new();
    }
    let mut body = Vec::with_capacity(roff.len());
    for line in roff.split_inclusive(|&b| b == b'\n') {
        let preamble = line.starts_with(b".ie \\n(.g .ds Aq") || line.starts_with(b".el .ds Aq");
        if !preamble && (headings || !line.starts_with(b".SH")) {
            body.extend_from_slice(line);
        }
    }
    body
}

/// Text made safe for a roff text line or a quoted macro argument.
fn escape(text: &str) -> String {
    let text = text
        .replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('"', "\\(dq");
    if text.starts_with(['.', '\'']) {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The NAME line (clap's `about` is written for `--help`).
const NAME_LINE: &str = "Chat Over IMAP LMTP proxy between Postfix and Dovecot";

const DESCRIPTION: &str = r#".SH DESCRIPTION
\fBcoid\fR is the server side of Chat Over IMAP (COI) for a host that already runs
Postfix and Dovecot. Postfix delivers to coid over LMTP; coid recognises chat
messages, tags them with the IMAP keyword \fB$Chat\fR, routes them according to a
Sieve policy (by default into \fBCOI/Chats\fR for users who asked for it) and
delivers every message to Dovecot's LMTP service. Plain email reaches Dovecot
unchanged. Each recipient gets \fB250\fR only once the store has accepted the
message for that recipient; coid's own trouble is a \fB4xx\fR reply, so Postfix
keeps the message and tries again.
.PP
coid also serves Dovecot's dict proxy protocol, so COI clients read and write
their COI settings and Web Push subscriptions with IMAP METADATA, and Delta Chat
clients set their push tokens; after delivery it sends Web Push notifications and
wakes Delta Chat devices through Delta Chat's notification service.
.PP
Every command but \fBreload\fR reads the configuration file given with
\fB\-\-config\fR (before or after the command's name);
\fBcoid check\-config\fR reports every problem in it at once.
"#;

const TRAILER: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
\fBcoid serve\fR stops accepting, lets transactions in flight finish (at most
\fBservice.shutdown_grace_secs\fR) and exits; a second signal exits at once.
.TP
\fBSIGHUP\fR
\fBcoid serve\fR reloads the configuration and the Sieve policy
(\fBcoid reload\fR \fIPID\fR sends it: the unit's \fBExecReload\fR).
.SH ENVIRONMENT
.TP
\fBCOID_LOG\fR
Log filter (\fBerror\fR, \fBwarn\fR, \fBinfo\fR, \fBdebug\fR, \fBtrace\fR, or
per module); default \fBinfo\fR. Logs go to standard error.
.TP
\fBJOURNAL_STREAM\fR
Set by systemd: log lines then carry no timestamp of their own.
.TP
\fBNOTIFY_SOCKET\fR, \fBLISTEN_FDS\fR, \fBLISTEN_FDNAMES\fR
Set by systemd: readiness and watchdog notifications; sockets passed by
\fIcoid.socket\fR (named \fBlmtp\fR and \fBdict\fR).
.SH FILES
.TP
\fI/etc/coid/coid.toml\fR
The configuration: every key with its default and what it means.
.TP
\fI/etc/coid/policy.sieve\fR
The default routing policy (also built in); set \fBpolicy.script\fR to use another.
.TP
\fI/etc/coid/dovecot/\fR
Dovecot configuration and global Sieve scripts that coid's routing needs.
.TP
\fI/var/lib/coid/coid.sqlite\fR
coid's state: users' COI settings, other METADATA, Web Push subscriptions, Delta
Chat device tokens, the push queue and the server's private VAPID key. Back it up.
.TP
\fI/var/spool/postfix/coid/lmtp\fR
The LMTP socket; Postfix delivers to \fBlmtp:unix:coid/lmtp\fR.
.TP
\fI/run/coid/dict\fR
The dict proxy socket for Dovecot's \fBmail_attribute_dict\fR.
.TP
\fI/usr/share/doc/coid/\fR
README.md (setup, behaviour, the policy) and the Postfix example.
.SH "EXIT STATUS"
As sysexits(3):
\fB0\fR success,
\fB64\fR usage error,
\fB65\fR message refused for good,
\fB67\fR unknown user,
\fB70\fR internal error,
\fB74\fR input or output error,
\fB75\fR temporary failure (try again later),
\fB78\fR configuration error (systemd does not restart coid after it).
\fBcoid doctor\fR alone exits \fB0\fR all checks passed, \fB1\fR warnings,
\fB2\fR errors.
.SH "SEE ALSO"
postfix(1), dovecot(1), sievec(1), systemctl(1), systemd.socket(5)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        String::from_utf8_lossy(&render()).into_owned()
    }

    #[test]
    fn page_is_roff_in_section_8_with_every_command() {
        let page = page();
        assert_eq!(page.matches(".TH coid 8 ").count(), 1);
        assert_eq!(page.matches(".ds Aq").count(), 2, "one preamble");
        for name in [
            "coid serve",
            "coid check\\-config",
            "coid deliver",
            "coid explain",
            "coid user get",
            "coid user set",
            "coid push vapid",
            "coid state export",
            "coid state import",
        ] {
            assert!(page.contains(&format!(".SS \"{name}\"")), "missing {name}");
        }
        // --config is global: described once under OPTIONS, not in every command.
        assert!(page.contains("\\fBcoid user get <ADDRESS>\\fR"), "{page}");
        let option = "\\fB\\-c\\fR, \\fB\\-\\-config\\fR \\fI<FILE>\\fR";
        assert_eq!(page.matches(option).count(), 1, "{page}");
        for name in ["coid health", "coid reload", "coid doctor"] {
            assert!(page.contains(&format!(".SS \"{name}\"")), "missing {name}");
        }
    }

    /// The page the package ships is what the binary renders.
    #[test]
    fn committed_page_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/coid.8");
        let committed = std::fs::read(path).unwrap_or_default();
        assert!(
            committed == render(),
            "{path} differs from `coid man`: run `cargo run -q -- man > packaging/coid.8`"
        );
    }

    #[test]
    fn hidden_command_and_help_stay_out() {
        let page = page();
        assert!(!page.contains("coid man"));
        assert!(!page.contains("coid help"));
        assert!(!page.contains("Print help"));
    }

    #[test]
    fn escape_keeps_roff_control_characters_literal() {
        assert_eq!(escape(".x \\ \"a-b\""), "\\&.x \\e \\(dqa\\-b\\(dq");
    }
}
