//! The config loader: `Config::parse` then `Config::validate`, as `Config::load` and
//! `coid check-config` run them; a config that passes is then turned into what
//! `coid serve` builds from it without touching the host (session limits and
//! contexts, push queue settings, Delta Chat rules, what a reload may change).
//!
//! Properties, beyond "no panic" (overflow checks are on in fuzz builds):
//! - a config that fails says why: a parse error or a non-empty list of problems,
//!   each one line;
//! - a parse error is a syntax error or a list of the values that do not fit their
//!   keys, each one line naming its key;
//! - a config that passes has what the daemon relies on (socket modes, the hierarchy
//!   separator and the message filter are typed, so they hold by construction):
//!   socket modes within 0777, a COI folder that is relative, limits in their ranges; an LMTP session built from it answers LHLO with clean lines, and
//!   its push deadlines and token windows can be computed.
//!
//! Input: the TOML text (a file that is not UTF-8 is refused before parsing).

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use coid::app::contexts::{Fixed, dict_context, restart_only_changes};
use coid::config::{Config, ConfigError};
use coid::lmtp::{Event, Limits, Session};
use coid::push::delivered::HookKinds;
use coid::push::deltachat::DeltaChatRules;
use coid::push::queue::PushQueue;
use coid::store::{CoiCache, CoiSettings, Store, unix_now_ms};
use coid::users::UserMap;
use libfuzzer_sys::fuzz_target;

/// What the daemon keeps across reloads: a store in memory, no push.
fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let store = Store::open(Path::new(":memory:")).expect("store in memory");
        Fixed {
            coi: CoiCache::new(store.clone()),
            store,
            push: None,
            webpush: None,
            recorder: coid::metrics::Recorder::off(),
        }
    })
}

fn check_valid(config: &Config) {
    assert!(config.lmtp.unix_socket_mode.bits() <= 0o777);
    assert!(config.dict.socket_mode.bits() <= 0o777);
    let settings = CoiSettings::defaults(&config.coi);
    assert!(!settings.chats_folder().starts_with('/'));
    assert!(config.lmtp.max_line_length >= 512 && config.lmtp.max_recipients >= 1);

    let limits = Limits {
        max_line: config.lmtp.max_line_length,
        max_message_size: config.lmtp.max_message_size,
        max_recipients: config.lmtp.max_recipients,
    };
    let mut session = Session::new(config.lmtp.hostname.clone(), limits);
    let mut events = Vec::new();
    session.ingest(b"LHLO client.example\r\n", &mut events);
    let [Event::Replies(lines)] = events.as_slice() else {
        panic!("LHLO answered {events:?}");
    };
    for line in lines {
        assert!(!line.text.contains(['\r', '\n']), "LHLO line {line:?}");
    }

    let users = UserMap::new(&config.users);
    let _ = users.resolve("Someone+tag@Example.ORG");
    let dict = dict_context(config, fixed());
    assert!(dict.limits.max_pending_bytes >= dict.limits.max_line);
    let now = unix_now_ms();
    let queue = PushQueue::new(fixed().store.clone(), &config.push);
    assert!(queue.deadline_from(now) >= now);
    queue
        .expire_subscriptions(None, now)
        .expect("store in memory");
    if let Some(rules) = DeltaChatRules::from_config(&config.deltachat) {
        assert!(rules.tokens_since(now) <= now / 1000);
    }
    let _ = HookKinds::from_config(config);
    let _ = restart_only_changes(&Config::default(), config);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text, Path::new("coid.toml")) {
        Ok(config) => config,
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.0.is_empty(), "refused without a problem");
            for problem in &problems.0 {
                assert!(
                    problem.contains(':') && !problem.contains('\n'),
                    "{problem:?}"
                );
            }
            return;
        }
        Err(err) => {
            assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    match config.validate() {
        Ok(()) => check_valid(&config),
        Err(problems) => {
            assert!(!problems.0.is_empty(), "failed without a problem");
            for problem in &problems.0 {
                assert!(
                    !problem.is_empty() && !problem.contains('\n'),
                    "{problem:?}"
                );
            }
        }
    }
});
