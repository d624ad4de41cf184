//! The `coid` command line: `serve`, `check-config`, `deliver` (LDA mode), `explain`,
//! `user get|set`, `push list|delete|test|vapid`, `state export|import`, `health`,
//! `reload` and `doctor`. `--config FILE` is a global option: before or after the
//! command's name. Exit codes follow sysexits(3): 0 ok, 64 usage, 65 data error, 67
//! unknown user, 70 internal error, 74 input/output error (`man`, `state`), 75
//! temporary failure, 78 configuration error.

mod build;
pub(crate) mod check;
mod deliver;
mod doctor;
pub(crate) mod health;
mod logging;
mod man;
mod push;
mod reload;
mod serve;
mod state;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::app::exit;

/// A command's result; a failure is its exit code and what to tell the operator.
pub(crate) type CliResult<T = ()> = Result<T, (u8, String)>;

/// Prints a failure (`coid: …`) and keeps only its exit code.
pub(crate) fn printed<T>(result: CliResult<T>) -> Result<T, u8> {
    result.map_err(|(code, message)| {
        logging::print_error(&message);
        code
    })
}

/// A temporary failure (75) with `err`'s text: the state store failed.
pub(crate) fn temp(err: impl std::fmt::Display) -> (u8, String) {
    (exit::TEMPFAIL, err.to_string())
}

/// coid: Chat Over IMAP for an existing Postfix + Dovecot host.
#[derive(Debug, Parser)]
#[command(name = "coid", version, about, long_about = None)]
pub struct Cli {
    /// Config file (every command but `reload` and `man` needs it; accepted before or
    /// after the command's name and arguments).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the LMTP proxy.
    Serve,
    /// Check a config file and its policy script; print every problem; exit 78 if any.
    CheckConfig,
    /// Deliver one message from standard input (LDA mode, like dovecot-lda).
    Deliver {
        /// Envelope sender (empty for the null sender).
        #[arg(long, short = 'f', default_value = "")]
        from: String,
        /// Envelope recipients.
        #[arg(long, short = 'r', required = true, num_args = 1..)]
        rcpt: Vec<String>,
    },
    /// Print, as JSON, what coid would do with the message on standard input.
    Explain {
        /// Envelope sender.
        #[arg(long, short = 'f', default_value = "")]
        from: String,
        /// Envelope recipients.
        #[arg(long, short = 'r', required = true, num_args = 1..)]
        rcpt: Vec<String>,
    },
    /// Read or change a user's COI settings.
    User {
        #[command(subcommand)]
        action: user::UserAction,
    },
    /// Web Push: a user's subscriptions, a test push, the server's VAPID key.
    Push {
        #[command(subcommand)]
        action: push::PushAction,
    },
    /// Move the whole state store to another one (SQLite into PostgreSQL): export it
    /// as JSON lines, import them into an empty store.
    State {
        #[command(subcommand)]
        action: state::StateAction,
    },
    /// Ask the running coid whether it serves: GET /health on the config's
    /// [metrics] listen address; exit 0 when it answers 200, 1 otherwise.
    Health,
    /// Tell the coid with process id PID to reload its config and policy (SIGHUP);
    /// the unit's ExecReload, so reloading needs no kill(1).
    Reload {
        /// The running coid's process id (systemd's $MAINPID).
        pid: i32,
    },
    /// Check the whole path on this host (Postfix, Dovecot, coid); print each problem
    /// with the line to change; exit 0 ok, 1 warnings, 2 errors.
    Doctor(doctor::DoctorArgs),
    /// Print the man page coid(8), roff, to standard output (for packaging).
    #[command(hide = true)]
    Man,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let code = match (cli.command, cli.config) {
        (Command::Reload { pid }, _) => reload::run(pid),
        (Command::Man, _) => man::print(),
        (_, None) => {
            logging::print_error("--config FILE is required for this command");
            exit::USAGE
        }
        (command, Some(config)) => with_config(command, &config),
    };
    ExitCode::from(code)
}

/// Runs a command that reads the config at `config`.
fn with_config(command: Command, config: &std::path::Path) -> u8 {
    match command {
        Command::Serve => serve::run(config),
        Command::CheckConfig => check::run(config),
        Command::Deliver { from, rcpt } => deliver::deliver(config, from, rcpt),
        Command::Explain { from, rcpt } => deliver::explain(config, from, rcpt),
        Command::User { action } => user::run(config, action),
        Command::Push { action } => push::run(config, action),
        Command::State { action } => state::run(config, action),
        Command::Health => health::run(config),
        Command::Doctor(args) => doctor::run(config, &args),
        Command::Reload { pid } => reload::run(pid),
        Command::Man => man::print(),
    }
}
