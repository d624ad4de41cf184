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

/// `coid check-config`: every problem in the config and the policy script at once.
pub fn check_config(path: &Path) -> u8 {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            super::logging::print_error(&format!("cannot read {}: {err}", path.display()));
            return exit::CONFIG;
        }
    };
    let config = match Config::parse(&text, path) {
        Ok(config) => config,
        Err(err) => {
            super::logging::print_error(&err.to_string());
            return exit::CONFIG;
        }
    };
    let mut problems = config.validate().err().map(|p| p.0).unwrap_or_default();
    if let Err(err) = Policy::load(&config.policy.script, config.policy.cpu_limit) {
        problems.push(err.to_string());
    }
    problems.extend(missing_accounts(&config));
    if problems.is_empty() {
        println!("{}: OK", path.display());
        return exit::OK;
    }
    for problem in &problems {
        super::logging::print_error(&format!("{}: {problem}", path.display()));
    }
    exit::CONFIG
}

/// The users and groups the config names that this host does not have (`coid serve`
/// would stop on the first of them).
fn missing_accounts(config: &Config) -> Vec<String> {
    use crate::daemon::privileges::{lookup_group, lookup_user};
    // A socket's owner and group matter only when that socket is configured.
    let unix = !config.lmtp.unix_socket.is_empty();
    let dict = !config.dict.socket.is_empty();
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
