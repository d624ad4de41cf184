//! `coid serve`: coid as a host service. Start-up runs in this order, each step only
//! once the one before succeeded:
//! 1. read and validate the config (exit 78 on any problem: systemd's
//!    `RestartPreventExitStatus=78` then does not restart-loop);
//! 2. take the sockets systemd passed ([`systemd`]) and bind the others, with their
//!    owner/group/mode ([`sockets`]);
//! 3. started as root: become `[service] user` ([`privileges`]);
//! 4. start the async runtime, open the state store, remove what a crash left in the
//!    spool ([`crate::spool::sweep`]), compile the Sieve policy, and serve ([`serve`])
//!    — READY=1 to systemd once everything accepts.
//!
//! While serving, `/health` follows the state store (`store_health`: degraded while
//! it fails). SIGHUP rebuilds the session contexts (`crate::app::contexts`); SIGTERM
//! drains ([`signals`]). The handlers are installed as step 4 begins: a stop during its
//! slow parts (a locked store waits out the busy timeout) is logged and ends coid with
//! 0 once the step is done, without serving; before that (steps 1–3, milliseconds) a
//! SIGTERM ends coid by its default action. The parts themselves are put together by
//! `crate::app`; this module
//! knows nothing of the command line.

#[forbid(unsafe_code)]
pub mod privileges;
#[forbid(unsafe_code)]
mod serve;
#[forbid(unsafe_code)]
pub mod signals;
#[forbid(unsafe_code)]
pub mod sockets;
mod store_health;
// The only module that may use `unsafe`: see the note in lib.rs.
pub mod systemd;

use std::path::Path;

use crate::app::AppError;
use crate::app::build::{load_config, runtime};
use crate::config::Config;
use privileges::Account;

/// Runs `coid serve` with the config at `config_path` until it is stopped.
///
/// # Errors
/// Why coid could not start or keep serving; its exit status is
/// [`AppError::exit_code`].
pub fn run(config_path: &Path) -> Result<(), AppError> {
    let config = load_config(config_path)?;
    let sockets = prepare(&config)?;
    // Multi-thread even with one thread: a current-thread runtime measured no better
    // (README, Threads).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(config.service.threads());
    let runtime = runtime(builder)?;
    runtime.block_on(serve::serve(config_path.to_owned(), config, sockets))
}

/// Steps 2 and 3: sockets, then the privilege drop (single-threaded, before the
/// runtime exists).
fn prepare(config: &Config) -> Result<sockets::Sockets, AppError> {
    let passed = systemd::passed_sockets().map_err(AppError::Config)?;
    let account = privileges::target(&config.service).map_err(AppError::Config)?;
    let sockets = sockets::open(config, passed, account.as_ref()).map_err(AppError::Config)?;
    if let Some(account) = &account {
        give_state_dir(config, account).map_err(AppError::Files)?;
        privileges::drop_to(account).map_err(AppError::Host)?;
    }
    Ok(sockets)
}

/// For admin commands (`coid user`, `coid push`) started as root: become `[service]
/// user` before the state is opened, as `coid serve` does, so a database they create
/// belongs to coid (a root-owned one would be read-only for the service).
///
/// # Errors
/// The account does not exist, or a system call failed.
pub fn become_service_user(config: &Config) -> Result<(), String> {
    let Some(account) = privileges::target(&config.service)? else {
        return Ok(());
    };
    give_state_dir(config, &account)?;
    privileges::drop_to(&account)
}

/// Creates a missing state directory for `account` (mode 0700: it holds the private
/// VAPID key). An existing one is left alone.
fn give_state_dir(config: &Config, account: &Account) -> Result<(), String> {
    let dir = &config.state.dir;
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    privileges::give(dir, Some(account.uid), Some(account.gid))
}
