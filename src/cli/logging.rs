//! Logging: tracing to stderr. Under systemd (`JOURNAL_STREAM` set) each line starts
//! with its syslog priority as `<N>` (sd-daemon(3): journald reads the prefix, so
//! `journalctl -p warning -u coid` works) and carries no timestamp, no level word and
//! no colours: the journal stamps every line and the priority is the level. An event
//! or an error message of several lines gets the prefix on every line, because
//! journald makes each line a record of its own. Elsewhere: timestamps, colours on a
//! terminal.
//! Fields are stable: `session{proto,id,peer}` spans each connection and
//! `message{size,rcpts,msg_id,class}` each message, so lines can be grepped by them.

use std::fmt;
use std::sync::OnceLock;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// Crates whose debug output carries SQL statement parameters, that is users' device
/// tokens, Web Push keys and the VAPID private key: never below info, whatever
/// `COID_LOG` asks for.
const NEVER_DEBUG: [&str; 2] = ["tokio_postgres=info", "postgres=info"];

/// `COID_LOG`'s filter (default `info`), with [`NEVER_DEBUG`] on top.
fn filter(env: Option<&str>) -> tracing_subscriber::EnvFilter {
    let mut filter = env
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    for directive in NEVER_DEBUG {
        if let Ok(directive) = directive.parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the subscriber; the level filter comes from `COID_LOG` (default `info`).
pub fn init() {
    let filter = filter(std::env::var("COID_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if stderr_is_journal() {
        let format = Format::default()
            .without_time()
            .with_level(false)
            .with_ansi(false);
        builder
            .with_ansi(false)
            .event_format(JournalPrefix(format))
            .init();
    } else {
        // Colours only for a person at a terminal: a log file keeps plain text.
        use std::io::IsTerminal;
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Prints an error for the operator to stderr, `coid: ` first; under the journal every
/// line with error priority, so a multi-line message stays an error throughout.
pub fn print_error(message: &str) {
    eprint!("{}", error_text(message, stderr_is_journal()));
}

/// [`print_error`]'s text.
fn error_text(message: &str, journal: bool) -> String {
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if journal {
            out.push_str("<3>");
        }
        out.push_str(if i == 0 { "coid: " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Whether stderr is the journal stream systemd connected (asked once).
fn stderr_is_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(journal_stream_is_stderr)
}

/// `JOURNAL_STREAM` holds the journal stream's `device:inode` (systemd.exec(5)),
/// compared with stderr's own, so a command run from a service with stderr
/// redirected keeps its timestamps.
fn journal_stream_is_stderr() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    value.to_str() == Some(format!("{}:{}", stat.st_dev, stat.st_ino).as_str())
}

/// Prefixes each line with its syslog priority (RFC 5424 §6.2.1 severities).
pub struct JournalPrefix<F>(pub F);

/// The syslog severity of a tracing level: error 3, warning 4, info 6, debug 7.
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

impl<S, F> FormatEvent<S, DefaultFields> for JournalPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: FormatEvent<S, DefaultFields>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        self.0.format_event(ctx, Writer::new(&mut text), event)?;
        let prefix = priority(*event.metadata().level());
        for line in text.lines() {
            writeln!(writer, "<{prefix}>{line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The database client's debug lines carry statement parameters (tokens, keys):
    /// they stay off even when the operator asks for debug, or for them by name.
    #[test]
    fn the_database_client_never_logs_below_info() {
        for env in [
            None,
            Some("debug"),
            Some("trace"),
            Some("tokio_postgres=trace,debug"),
        ] {
            let text = filter(env).to_string();
            for directive in NEVER_DEBUG {
                assert!(text.contains(directive), "{env:?}: {text}");
            }
            assert!(!text.contains("tokio_postgres=trace"), "{env:?}: {text}");
        }
    }

    #[test]
    fn every_line_of_an_error_is_an_error() {
        assert_eq!(
            error_text("bad config\na: one\nb: two", true),
            "<3>coid: bad config\n<3>  a: one\n<3>  b: two\n"
        );
        assert_eq!(error_text("oops", false), "coid: oops\n");
    }

    #[test]
    fn severities_follow_syslog() {
        assert_eq!(
            [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE
            ]
            .map(priority),
            [3, 4, 6, 7, 7]
        );
    }
}
