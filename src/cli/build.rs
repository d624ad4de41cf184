//! The command line's side of assembling coid: loading the config and opening the
//! state store with the operator told why when they fail, admin commands run as the
//! service user, and `coid check-config`. The assembling itself is `crate::app`.

use std::path::Path;
use std::sync::Arc;

use super::{CliResult, exit, printed};
use crate::app::{self, AppError};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::store::Store;

/// A failure of `crate::app` as the command line reports it: its exit code and text.
pub fn failed(err: AppError) -> (u8, String) {
    (err.exit_code(), err.to_string())
}

/// Loads the config, or prints every problem and returns the exit code (78).
pub fn load_config(path: &Path) -> Result<Config, u8> {
    printed(app::build::load_config(path).map_err(failed))
}

/// A tokio runtime from `builder`, or the exit code (70) and why.
pub fn runtime(builder: tokio::runtime::Builder) -> CliResult<tokio::runtime::Runtime> {
    app::build::runtime(builder).map_err(failed)
}

/// Runs an admin command (`coid user`, `coid push`) on the config's state store.
pub fn with_store(config_path: &Path, command: impl FnOnce(&Config, &Store) -> CliResult) -> u8 {
    let run = || {
        let config = load_config(config_path)?;
        printed(crate::daemon::become_service_user(&config).map_err(|m| (exit::SOFTWARE, m)))?;
        let store = printed(app::build::open_store(&config).map_err(failed))?;
        printed(command(&config, &store))
    };
    run().err().unwrap_or(exit::OK)
}

/// The pipeline over a newly opened state store, or the exit code after printing why
/// (state store 75, policy 78).
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Store), u8> {
    printed(app::build::build_pipeline(config).map_err(failed))
}

/// Every problem in the config at `path` and its policy script, for `coid
/// check-config` (which adds this host's own checks and prints the verdict): values
/// that do not fit their keys, values that cannot work, the policy and the accounts
/// are all checked in one round. `Err` with the exit code when the file cannot be
/// read or is not TOML (said already).
pub fn config_problems(path: &Path) -> Result<Vec<String>, u8> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        super::logging::print_error(&format!("cannot read {}: {err}", path.display()));
        exit::CONFIG
    })?;
    let (config, mut problems) = Config::check(&text, path).map_err(|err| {
        super::logging::print_error(&err.to_string());
        exit::CONFIG
    })?;
    if let Err(err) = Policy::load(&config.policy.script, config.policy.cpu_limit) {
        problems.push(err.to_string());
    }
    problems.extend(missing_accounts(&config));
    Ok(problems)
}

/// The users and groups the config names that this host does not have (`coid serve`
/// would stop on the first of them).
fn missing_accounts(config: &Config) -> Vec<String> {
    use crate::daemon::privileges::{lookup_group, lookup_user};
    // A socket's owner and group matter only when that socket is configured.
    let unix = !config.lmtp.unix_socket.as_os_str().is_empty();
    let dict = !config.dict.socket.as_os_str().is_empty();
    let users = [
        ("service.user", &config.service.user, true),
        (
            "lmtp.unix_socket_owner",
            &config.lmtp.unix_socket_owner,
            unix,
        ),
        ("dict.socket_owner", &config.dict.socket_owner, dict),
    ];
    let groups = [
        ("service.group", &config.service.group, true),
        (
            "lmtp.unix_socket_group",
            &config.lmtp.unix_socket_group,
            unix,
        ),
        ("dict.socket_group", &config.dict.socket_group, dict),
    ];
    let mut problems = Vec::new();
    let named = |(_, name, used): &(&str, &String, bool)| *used && !name.is_empty();
    for (key, name, _) in users.into_iter().filter(named) {
        if let Err(err) = lookup_user(name) {
            problems.push(format!("{key}: {err}"));
        }
    }
    for (key, name, _) in groups.into_iter().filter(named) {
        if let Err(err) = lookup_group(name) {
            problems.push(format!("{key}: {err}"));
        }
    }
    problems
}
