//! The `coid` command line: `serve`, `check-config`, `deliver` (LDA mode), `explain`,
//! `user get|set` and `push list|delete|test|vapid`. Exit codes follow sysexits(3):
//! 0 ok, 64 usage, 65 data error, 67 unknown user, 70 internal error, 74 output error
//! (`man`), 75 temporary failure, 78 configuration error.

mod build;
mod deliver;
mod logging;
mod man;
mod push;
mod serve;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the LMTP proxy.
    Serve {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Check a config file and its policy script; print every problem; exit 78 if any.
    CheckConfig {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
    },
    /// Deliver one message from standard input (LDA mode, like dovecot-lda).
    Deliver {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Envelope sender (empty for the null sender).
        #[arg(long, short = 'f', default_value = "")]
        from: String,
        /// Envelope recipients.
        #[arg(long, short = 'r', required = true, num_args = 1..)]
        rcpt: Vec<String>,
    },
    /// Print, as JSON, what coid would do with the message on standard input.
    Explain {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Envelope sender.
        #[arg(long, short = 'f', default_value = "")]
        from: String,
        /// Envelope recipients.
        #[arg(long, short = 'r', required = true, num_args = 1..)]
        rcpt: Vec<String>,
    },
    /// Read or change a user's COI settings.
    User {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        #[command(subcommand)]
        action: user::UserAction,
    },
    /// Web Push: a user's subscriptions, a test push, the server's VAPID key.
    Push {
        /// Config file.
        #[arg(long, short = 'c')]
        config: PathBuf,
        #[command(subcommand)]
        action: push::PushAction,
    },
    /// Print the man page coid(8), roff, to standard output (for packaging).
    #[command(hide = true)]
    Man,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let code = match cli.command {
        Command::Serve { config } => serve::run(&config),
        Command::CheckConfig { config } => build::check_config(&config),
        Command::Deliver { config, from, rcpt } => deliver::deliver(&config, from, rcpt),
        Command::Explain { config, from, rcpt } => deliver::explain(&config, from, rcpt),
        Command::User { config, action } => user::run(&config, action),
        Command::Push { config, action } => push::run(&config, action),
        Command::Man => man::print(),
    };
    ExitCode::from(code)
}
