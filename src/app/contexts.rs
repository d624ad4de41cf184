//! What sessions run on, built from a config: the LMTP context (pipeline: Sieve policy,
//! delivery backend, user mapping, COI defaults, limits) and the dict context. `coid
//! serve` builds them at start and again on SIGHUP; a reload that fails anywhere
//! (config, Sieve) changes nothing. The parts opened once — the state store, the push
//! queue and worker, the listeners — are kept across reloads; changes to their
//! settings are reported as needing a restart.

use std::sync::Arc;
use std::time::Duration;

use super::AppError;
use super::build::{load_vapid, notifier, pipeline, push_hook, push_sender};
use crate::config::{Config, DictConfig, LmtpConfig};
use crate::dict::deltachat::DeltaChatEntries;
use crate::dict::webpush::WebPush;
use crate::dict::{self, Attributes, DictContext};
use crate::lmtp::Limits;
use crate::lmtp::connection::ConnectionContext;
use crate::metrics::Recorder;
use crate::pipeline::Pipeline;
use crate::push::delivered::PushHook;
use crate::push::deltachat::DeltaChatRules;
use crate::push::worker::Worker;
use crate::store::{CoiCache, Store};

/// The parts opened once per process.
pub struct Fixed {
    /// The state store.
    pub store: Store,
    /// Queues pushes after delivery (shared by every pipeline, so a flush at exit
    /// covers messages of earlier configs too).
    pub push: Option<PushHook>,
    /// The WebPush METADATA entries.
    pub webpush: Option<WebPush>,
    /// The users' COI settings as delivery reads them, shared by the pipelines of
    /// every config (reloads).
    pub coi: CoiCache,
    /// The process's metrics: every part counts here, the listener serves it.
    pub recorder: Recorder,
}

impl Fixed {
    /// Opens the state store and, with `[push] enabled` or `[deltachat] push`, the
    /// push queue, the hook that fills it and the sending worker (with the VAPID key
    /// for Web Push, a notifier for Delta Chat).
    ///
    /// # Errors
    /// The store, the VAPID key or an HTTP client.
    pub fn open(config: &Config) -> Result<(Fixed, Option<Worker>), AppError> {
        let store = Store::from_config(config)?;
        // Refuse to serve on a state store that cannot be written, rather than say
        // "serving" and fail every METADATA write and every push later.
        store.check_writable()?;
        let recorder = Recorder::new();
        let Some(push) = push_hook(config, &store, &recorder) else {
            let fixed = Fixed {
                coi: CoiCache::new(store.clone()),
                store,
                push: None,
                webpush: None,
                recorder,
            };
            return Ok((fixed, None));
        };
        let queue = push.queue().clone();
        let lifetime = Duration::from_secs(config.deltachat.token_expire_days * 86_400);
        // The worker queues the hook's pushes with its own rounds (one transaction).
        let mut worker = Worker::new(queue.clone(), &config.push, lifetime).with_hook(push.clone());
        let mut webpush = None;
        if config.push.enabled {
            let vapid = load_vapid(&store)?;
            worker = worker.with_webpush(push_sender(config, vapid.clone())?, &config.push);
            webpush = Some(WebPush::new(queue, &vapid));
        }
        if DeltaChatRules::from_config(&config.deltachat).is_some() {
            worker = worker.with_deltachat(notifier(config)?, &config.deltachat);
        }
        let fixed = Fixed {
            push: Some(push),
            webpush,
            coi: CoiCache::new(store.clone()),
            store,
            recorder,
        };
        Ok((fixed, Some(worker)))
    }
}

/// The contexts sessions are accepted with.
pub struct Contexts {
    /// LMTP sessions.
    pub lmtp: Arc<ConnectionContext>,
    /// Dict proxy sessions.
    pub dict: Arc<DictContext>,
}

/// Builds both contexts from `config` over `fixed`.
///
/// # Errors
/// The Sieve policy does not compile.
pub fn build(config: &Config, fixed: &Fixed) -> Result<Contexts, AppError> {
    let pipeline = pipeline(
        config,
        fixed.store.clone(),
        fixed.push.clone(),
        &fixed.recorder,
    )?
    .with_coi_cache(fixed.coi.clone());
    Ok(Contexts {
        lmtp: Arc::new(lmtp_context(config, Arc::new(pipeline))),
        dict: Arc::new(dict_context(config, fixed)),
    })
}

/// Reads the config at `path` again and builds new contexts from it; `started` is
/// the config coid started with (its listeners, store and push settings stay).
///
/// # Errors
/// Every problem of the new config, or the Sieve error; nothing changes then.
pub fn reload(
    path: &std::path::Path,
    started: &Config,
    fixed: &Fixed,
) -> Result<Contexts, AppError> {
    let mut config = super::build::load_config(path)?;
    for key in restart_only_changes(started, &config) {
        tracing::warn!(
            key,
            "changed in the config file; takes effect at the next restart"
        );
    }
    // What only a restart changes stays as coid started, also for the new contexts
    // (the Maildir base and the spool live under [state]).
    config.state = started.state.clone();
    build(&config, fixed)
}

/// The settings a reload cannot apply (bound sockets, the store, the push worker,
/// the account) that differ between `old` and `new`.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (ol, nl, od, nd) = (&old.lmtp, &new.lmtp, &old.dict, &new.dict);
    let state_differs = old.state != new.state;
    let checks: [(&'static str, bool); 9] = [
        (
            "lmtp listeners (unix_socket*, tcp)",
            lmtp_listeners(ol) != lmtp_listeners(nl),
        ),
        (
            "lmtp.max_connections",
            ol.max_connections != nl.max_connections,
        ),
        ("dict socket (socket*)", dict_socket(od) != dict_socket(nd)),
        (
            "dict.max_connections",
            od.max_connections != nd.max_connections,
        ),
        ("state", state_differs),
        ("push", old.push != new.push),
        (
            "deltachat (push, notify_url, notify, token_expire_days, deadline, timeouts, backoff)",
            push_settings(&old.deltachat) != push_settings(&new.deltachat),
        ),
        ("service", old.service != new.service),
        ("metrics", old.metrics != new.metrics),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| key)
        .collect()
}

/// What of `[lmtp]` the bound listeners were made from.
fn lmtp_listeners(l: &LmtpConfig) -> impl PartialEq + use<'_> {
    (
        &l.unix_socket,
        l.unix_socket_mode,
        &l.unix_socket_owner,
        &l.unix_socket_group,
        &l.tcp,
    )
}

/// What of `[dict]` the bound socket was made from.
fn dict_socket(d: &DictConfig) -> impl PartialEq + use<'_> {
    (&d.socket, d.socket_mode, &d.socket_owner, &d.socket_group)
}

/// What of `[deltachat]` the push hook and worker took at start (the server entries
/// and `max_tokens` belong to the dict context and reload).
fn push_settings(d: &crate::config::DeltaChatConfig) -> impl PartialEq + use<> {
    (
        d.push,
        d.notify_url.clone(),
        d.notify,
        d.token_expire_days,
        d.deadline_secs,
        d.timeout_secs,
        (d.backoff_first_secs, d.backoff_max_secs, d.rate_limit_secs),
    )
}

/// The LMTP per-connection settings from the config.
pub fn lmtp_context(config: &Config, pipeline: Arc<Pipeline>) -> ConnectionContext {
    ConnectionContext {
        pipeline,
        limits: Limits {
            max_line: config.lmtp.max_line_length,
            max_message_size: config.lmtp.max_message_size,
            max_recipients: config.lmtp.max_recipients,
        },
        hostname: config.lmtp.hostname.clone(),
        idle_timeout: Duration::from_secs(config.lmtp.idle_timeout_secs),
        spool_threshold: config.lmtp.spool_threshold,
        spool_dir: config.spool_dir(),
    }
}

/// The dict proxy's settings from the config over `fixed`'s store (with its WebPush
/// entries, if on).
pub fn dict_context(config: &Config, fixed: &Fixed) -> DictContext {
    let d = &config.dict;
    let mut attributes = Attributes::new(fixed.store.clone(), &config.users, &config.coi)
        .with_deltachat(DeltaChatEntries::new(config))
        .with_recorder(fixed.recorder.clone());
    if let Some(webpush) = fixed.webpush.clone() {
        attributes = attributes.with_webpush(webpush);
    }
    DictContext {
        attributes: Arc::new(attributes),
        limits: dict::Limits {
            max_line: d.max_line_length,
            max_transactions: d.max_transactions,
            max_changes: d.max_changes,
            max_pending_bytes: d.max_pending_bytes,
            max_rows: d.max_iterate_rows,
        },
        idle_timeout: Duration::from_secs(d.idle_timeout_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_the_state_directory_it_started_with() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coid.toml");
        let text = "[lmtp]\nhostname = \"new.example\"\n[state]\ndir = \"/elsewhere\"\n\
                    [delivery]\nbackend = \"maildir\"\n";
        std::fs::write(&path, text).expect("config");
        let mut started = Config::default();
        started.state.dir = dir.path().to_owned();
        let (_store_dir, store) = crate::store::temp_store();
        let fixed = Fixed {
            coi: CoiCache::new(store.clone()),
            store,
            push: None,
            webpush: None,
            recorder: Recorder::off(),
        };
        let contexts = reload(&path, &started, &fixed).expect("reloads");
        assert_eq!(contexts.lmtp.hostname, "new.example", "the reloadable part");
        assert_eq!(contexts.lmtp.spool_dir, dir.path().join("spool"));
    }

    #[test]
    fn listener_and_store_changes_need_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        assert!(restart_only_changes(&old, &new).is_empty());
        new.lmtp.tcp = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 2424))];
        new.push.ttl_secs = 60;
        new.policy.cpu_limit = 5;
        new.lmtp.max_recipients = 3;
        let changes = restart_only_changes(&old, &new);
        assert_eq!(changes, ["lmtp listeners (unix_socket*, tcp)", "push"]);
    }

    #[test]
    fn typed_settings_compare_by_value() {
        let old = Config::default();
        let mut new = old.clone();
        new.dict.socket_mode =
            crate::config::SocketMode::try_from("0600".to_owned()).expect("an octal mode");
        new.push.urgency = crate::config::Urgency::High;
        new.service.user = "mail".into();
        new.metrics.listen = None;
        new.deltachat.max_tokens = 3;
        new.users.username = crate::config::UsernameForm::Localpart;
        let changes = restart_only_changes(&old, &new);
        assert_eq!(
            changes,
            ["dict socket (socket*)", "push", "service", "metrics"]
        );
    }
}
