//! Assembling coid from a config file: config → state store, policy, backend, pipeline.
//! Shared by `serve`, `deliver`, `explain` and `check-config`, so all of them see the
//! same problems the same way.

use std::path::Path;
use std::sync::Arc;

use super::{CliResult, exit, printed, temp};
use crate::config::Config;
use crate::delivery::Backend;
use crate::delivery::dovecot::DovecotLmtp;
use crate::delivery::maildir::Maildir;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::push::delivered::{HookKinds, PushHook};
use crate::push::deltachat::notifier::Notifier;
use crate::push::endpoint::EndpointPolicy;
use crate::push::queue::{PushQueue, vapid_key};
use crate::push::webpush::sender::Sender;
use crate::push::webpush::vapid::VapidKey;
use crate::store::Store;

/// Loads the config, or prints every problem and returns the exit code (78).
pub fn load_config(path: &Path) -> Result<Config, u8> {
    Config::load(path).map_err(|err| {
        super::logging::print_error(&err.to_string());
        exit::CONFIG
    })
}

/// Builds a tokio runtime from `builder` (timers and I/O on).
///
/// # Errors
/// 70 and why.
pub fn runtime(mut builder: tokio::runtime::Builder) -> CliResult<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .map_err(|err| (exit::SOFTWARE, format!("cannot start runtime: {err}")))
}

/// Opens the state store, or prints why and returns the exit code (75).
pub fn open_store(config: &Config) -> Result<Store, u8> {
    printed(Store::open(&config.database_path()).map_err(temp))
}

/// Runs an admin command (`coid user`, `coid push`) on the config's state store.
pub fn with_store(config_path: &Path, command: impl FnOnce(&Config, &Store) -> CliResult) -> u8 {
    let run = || {
        let config = load_config(config_path)?;
        printed(crate::daemon::become_service_user(&config).map_err(|m| (exit::SOFTWARE, m)))?;
        let store = open_store(&config)?;
        printed(command(&config, &store))
    };
    run().err().unwrap_or(exit::OK)
}

/// Builds the pipeline from a valid config, over a newly opened state store.
///
/// # Errors
/// The exit code after printing why (state store 75, policy 78).
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Store), u8> {
    let store = open_store(config)?;
    let push = push_hook(config, &store);
    let pipeline = printed(pipeline(config, store.clone(), push))?;
    Ok((Arc::new(pipeline), store))
}

/// The hook that queues every kind of push `config` turns on, over `store`'s queue;
/// `None` when none is on.
pub fn push_hook(config: &Config, store: &Store) -> Option<PushHook> {
    let kinds = HookKinds::from_config(config)?;
    Some(PushHook::new(
        PushQueue::new(store.clone(), &config.push),
        kinds,
    ))
}

/// The pipeline `config` describes over `store`, queueing pushes through `push`.
///
/// # Errors
/// 78: the Sieve policy does not compile.
pub fn pipeline(config: &Config, store: Store, push: Option<PushHook>) -> CliResult<Pipeline> {
    let policy = Policy::load(&config.policy.script, config.policy.cpu_limit)
        .map_err(|err| (exit::CONFIG, err.to_string()))?;
    let pipeline = Pipeline::new(config, Arc::new(policy), store, backend(config));
    Ok(match push {
        Some(hook) => pipeline.with_push(hook),
        None => pipeline,
    })
}

/// The delivery backend `[delivery]` names.
pub fn backend(config: &Config) -> Arc<dyn Backend> {
    match config.delivery.backend.as_str() {
        "dovecot" => Arc::new(DovecotLmtp::new(&config.delivery.dovecot)),
        _ => Arc::new(Maildir::new(&config.delivery.maildir, &config.state.dir)),
    }
}

/// The server's VAPID key, created in the store on first use.
///
/// # Errors
/// 75: the store or the stored key failed.
pub fn load_vapid(store: &Store) -> CliResult<VapidKey> {
    vapid_key(store).map_err(|err| (exit::TEMPFAIL, format!("VAPID key: {err}")))
}

/// The endpoint rules of `[push]`, which every kind of push keeps.
pub fn endpoint_policy(config: &Config) -> EndpointPolicy {
    EndpointPolicy {
        allow_private: config.push.allow_private_endpoints,
    }
}

/// A Delta Chat notifier by `[deltachat]`.
///
/// # Errors
/// 70: the HTTP client could not be built.
pub fn notifier(config: &Config) -> CliResult<Notifier> {
    let idle = config.push.concurrency;
    Notifier::new(&config.deltachat, endpoint_policy(config), idle)
        .map_err(|err| (exit::SOFTWARE, format!("delta chat notifier: {err}")))
}

/// A push sender by `[push]`.
///
/// # Errors
/// 70: the HTTP client could not be built.
pub fn push_sender(config: &Config, vapid: VapidKey) -> CliResult<Sender> {
    let policy = endpoint_policy(config);
    let timeout = std::time::Duration::from_secs(config.push.timeout_secs);
    let idle = config.push.concurrency;
    Sender::new(vapid, &config.push.vapid_subject, policy, timeout, idle)
        .map_err(|err| (exit::SOFTWARE, format!("push sender: {err}")))
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
