//! The signals coid acts on, and who sends them:
//! - SIGTERM: systemd (`systemctl stop`) or an init script — stop gracefully.
//! - SIGINT: an operator's Ctrl-C in a foreground run — the same.
//! - a second SIGTERM/SIGINT while stopping: exit at once (status 1), cutting off
//!   transactions in flight (Postfix retries them: they were never answered 250).
//! - SIGHUP: `systemctl reload` (`ExecReload=`) — re-read config and Sieve scripts.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop gracefully.
    Stop,
    /// Reload config and Sieve.
    Reload,
}

/// The installed handlers.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers (inside the runtime). From now on these signals no
    /// longer kill the process.
    ///
    /// # Errors
    /// The runtime could not register them.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next request.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Stop,
            _ = self.int.recv() => Request::Stop,
            _ = self.hup.recv() => Request::Reload,
        }
    }

    /// Whether a SIGTERM/SIGINT arrived since [`Signals::install`] and has not been
    /// taken yet; does not wait. A pending SIGHUP stays pending for [`Signals::next`]
    /// (the config may have changed after start-up read it).
    pub async fn stop_pending(&mut self) -> bool {
        tokio::select! {
            biased;
            _ = self.term.recv() => true,
            _ = self.int.recv() => true,
            () = std::future::ready(()) => false,
        }
    }

    /// After the first stop request: a second SIGTERM/SIGINT exits the process at
    /// once; SIGHUP is ignored from now on.
    pub fn arm_second_stop(mut self) {
        tokio::spawn(async move {
            while self.next().await == Request::Reload {
                tracing::info!("SIGHUP while stopping: ignored");
            }
            tracing::warn!("second stop signal: exiting now");
            std::process::exit(1);
        });
    }
}
