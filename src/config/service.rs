//! `[service]` and `[metrics]`: how coid runs as a host service — the user it drops to
//! when started as root, how long a stop waits for transactions in flight, and the
//! local listener for Prometheus metrics and the health check. Also the account-name
//! check used for the socket owners and groups of `[lmtp]` and `[dict]`.

use std::net::SocketAddr;

use serde::Deserialize;

use super::validate::check_range;

/// `[service]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Started as root, coid binds its sockets and then becomes this user before it
    /// opens its state or reads a message. Empty: stay who started it.
    pub user: String,
    /// The group to drop to; empty: the user's primary group. The user's
    /// supplementary groups (from the group database) are kept.
    pub group: String,
    /// Seconds transactions in flight get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Threads that run sessions; 0: half the CPUs, at least one (see
    /// [`ServiceConfig::threads`]).
    pub worker_threads: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            user: "coid".into(),
            group: String::new(),
            shutdown_grace_secs: 30,
            worker_threads: 0,
        }
    }
}

impl ServiceConfig {
    pub(super) fn validate(&self, p: &mut Vec<String>) {
        check_name(p, "service.user", &self.user);
        check_name(p, "service.group", &self.group);
        check_range(
            p,
            "service.shutdown_grace_secs",
            self.shutdown_grace_secs,
            1,
            3600,
        );
        check_range(p, "service.worker_threads", self.worker_threads, 0, 256);
    }

    /// How many threads run sessions. `worker_threads`, or with 0 half of the CPUs
    /// coid may use, at least one. coid's sessions wait on sockets far more than
    /// they compute, and the host's Postfix and Dovecot want the other CPUs: on 2
    /// CPUs one thread took 14% less CPU per message than two, at the same rate
    /// (issue 10's measurement, in the README).
    pub fn threads(&self) -> usize {
        if self.worker_threads > 0 {
            return usize::try_from(self.worker_threads).unwrap_or(1);
        }
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        (cpus / 2).max(1)
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:port` of the HTTP listener for `/metrics` (Prometheus text format) and
    /// `/health`; `None` (empty in the file): none. Meant for loopback: it has no
    /// authentication.
    #[serde(deserialize_with = "super::values::optional_address")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9466))),
        }
    }
}

/// Adds a problem when `name` (a user or group; empty allowed) is not a plain
/// account name, so nothing odd reaches the account lookup.
pub(super) fn check_name(p: &mut Vec<String>, key: &str, name: &str) {
    let fine = name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !fine {
        p.push(format!("{key}: {name:?} is not a user or group name"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_zero_is_half_the_cpus_and_never_none() {
        let mut service = ServiceConfig::default();
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        assert_eq!(service.threads(), (cpus / 2).max(1));
        service.worker_threads = 3;
        assert_eq!(service.threads(), 3);
        let mut problems = Vec::new();
        service.worker_threads = 257;
        service.validate(&mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
