//! Assembling coid's parts from a config: config → state store → policy and backend →
//! pipeline, and the push parts (hook, sender, notifier). The command line
//! (`deliver`, `explain`, `user`, `push`) and the service (`daemon/`, through
//! [`super::contexts`]) both build through these functions, so they see the same
//! problems the same way.

use std::path::Path;
use std::sync::Arc;

use super::AppError;
use crate::config::{Config, DeliveryBackend};
use crate::delivery::Backend;
use crate::delivery::dovecot::DovecotLmtp;
use crate::delivery::maildir::Maildir;
use crate::metrics::Recorder;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::push::delivered::{HookKinds, PushHook};
use crate::push::deltachat::notifier::Notifier;
use crate::push::endpoint::EndpointPolicy;
use crate::push::queue::{PushQueue, vapid_key};
use crate::push::webpush::sender::Sender;
use crate::push::webpush::vapid::VapidKey;
use crate::store::Store;

/// Reads and validates the config at `path`.
///
/// # Errors
/// Every problem in it.
pub fn load_config(path: &Path) -> Result<Config, AppError> {
    Config::load(path).map_err(|err| AppError::Config(err.to_string()))
}

/// Builds a tokio runtime from `builder` (timers and I/O on).
///
/// # Errors
/// The runtime could not be built.
pub fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, AppError> {
    builder
        .enable_all()
        .build()
        .map_err(|err| AppError::Internal(format!("cannot start runtime: {err}")))
}

/// Opens the config's state store.
///
/// # Errors
/// The store (SQLite and its directory, or PostgreSQL) failed.
pub fn open_store(config: &Config) -> Result<Store, AppError> {
    Ok(Store::from_config(config)?)
}

/// The pipeline over a newly opened state store, with the push hook `config` asks
/// for (the LDA and `explain` path; `coid serve` builds through
/// [`super::contexts::Fixed`]).
///
/// # Errors
/// The state store or the Sieve policy.
pub fn build_pipeline(config: &Config) -> Result<(Arc<Pipeline>, Store), AppError> {
    let store = open_store(config)?;
    let push = push_hook(config, &store, &Recorder::off());
    let pipeline = pipeline(config, store.clone(), push, &Recorder::off())?;
    Ok((Arc::new(pipeline), store))
}

/// The hook that queues every kind of push `config` turns on, over `store`'s queue
/// (counting in `recorder`); `None` when none is on.
pub fn push_hook(config: &Config, store: &Store, recorder: &Recorder) -> Option<PushHook> {
    let kinds = HookKinds::from_config(config)?;
    let queue = PushQueue::new(store.clone(), &config.push).with_recorder(recorder.clone());
    Some(PushHook::new(queue, kinds))
}

/// The pipeline `config` describes over `store`, queueing pushes through `push` and
/// counting in `recorder`.
///
/// # Errors
/// The Sieve policy does not compile.
pub fn pipeline(
    config: &Config,
    store: Store,
    push: Option<PushHook>,
    recorder: &Recorder,
) -> Result<Pipeline, AppError> {
    let policy = Policy::load(&config.policy.script, config.policy.cpu_limit)?;
    let backend = backend(config, recorder);
    let pipeline =
        Pipeline::new(config, Arc::new(policy), store, backend).with_recorder(recorder.clone());
    Ok(match push {
        Some(hook) => pipeline.with_push(hook),
        None => pipeline,
    })
}

/// The delivery backend `[delivery]` names, counting its failures in `recorder`.
pub fn backend(config: &Config, recorder: &Recorder) -> Arc<dyn Backend> {
    let recorder = recorder.clone();
    match config.delivery.backend {
        DeliveryBackend::Dovecot => {
            Arc::new(DovecotLmtp::new(&config.delivery.dovecot).with_recorder(recorder))
        }
        DeliveryBackend::Maildir => Arc::new(
            Maildir::new(&config.delivery.maildir, &config.state.dir).with_recorder(recorder),
        ),
    }
}

/// The server's VAPID key, created in the store on first use.
///
/// # Errors
/// The store or the stored key failed.
pub fn load_vapid(store: &Store) -> Result<VapidKey, AppError> {
    vapid_key(store).map_err(|err| AppError::Files(format!("VAPID key: {err}")))
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
/// The HTTP client could not be built.
pub fn notifier(config: &Config) -> Result<Notifier, AppError> {
    let idle = config.push.concurrency;
    Notifier::new(&config.deltachat, endpoint_policy(config), idle)
        .map_err(|err| AppError::Internal(format!("delta chat notifier: {err}")))
}

/// A push sender by `[push]`.
///
/// # Errors
/// The HTTP client could not be built.
pub fn push_sender(config: &Config, vapid: VapidKey) -> Result<Sender, AppError> {
    let policy = endpoint_policy(config);
    let timeout = std::time::Duration::from_secs(config.push.timeout_secs);
    let idle = config.push.concurrency;
    Sender::new(vapid, &config.push.vapid_subject, policy, timeout, idle)
        .map_err(|err| AppError::Internal(format!("push sender: {err}")))
}
