//! The operator's routing policy: a Sieve script (RFC 5228) run per recipient with
//! sieve-rs, fed coid's classification and the recipient's COI settings as RFC 5183
//! environment items (`vnd.coid.*`, listed in `conf.d/policy.sieve`).
//!
//! The script is compiled once (at start and reload); features coid cannot carry out
//! are refused then. A runtime error or the CPU limit never loses mail: the recipient
//! gets a plain keep into INBOX and a warning is logged.

mod capabilities;
mod verdict;

use std::path::Path;
use std::sync::Arc;

use mail_parser::Message;
use sieve::compiler::grammar::Capability;
use sieve::{Compiler, Envelope, Event, Input, Runtime, Sieve};

use crate::classify::Classification;
use crate::store::CoiSettings;

pub use verdict::{Evaluation, Explained, Target, Verdict};

/// The default policy, shipped as `conf.d/policy.sieve`.
pub const DEFAULT_SCRIPT: &str = include_str!("../../conf.d/policy.sieve");

/// Why a script cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy script {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Sieve syntax error.
    #[error("policy script {path}: {message}")]
    Compile {
        /// The file.
        path: String,
        /// sieve-rs's message, with line and column.
        message: String,
    },
    /// The script uses features coid refuses.
    #[error("policy script {path}: {}", .problems.join("; "))]
    Refused {
        /// The file.
        path: String,
        /// One message per refused feature.
        problems: Vec<String>,
    },
}

/// What the policy knows about one recipient.
pub struct Facts<'a> {
    /// Envelope sender.
    pub mail_from: &'a str,
    /// This recipient, as given in RCPT.
    pub rcpt: &'a str,
    /// The message's class.
    pub classification: &'a Classification,
    /// The recipient's effective COI settings.
    pub settings: &'a CoiSettings,
}

/// A compiled policy, shared by all sessions.
pub struct Policy {
    script: Arc<Sieve>,
    runtime: Runtime,
}

impl Policy {
    /// Loads the script at `path`, or the default when `path` is empty.
    ///
    /// # Errors
    /// Unreadable, invalid or refused script.
    pub fn load(path: impl AsRef<Path>, cpu_limit: usize) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        if path.as_os_str().is_empty() {
            return Policy::compile(DEFAULT_SCRIPT, "(built-in default)", cpu_limit);
        }
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: name.clone(),
            source,
        })?;
        Policy::compile(&text, &name, cpu_limit)
    }

    /// Compiles script text; `name` is used in messages.
    ///
    /// # Errors
    /// Invalid or refused script.
    pub fn compile(text: &str, name: &str, cpu_limit: usize) -> Result<Policy, PolicyError> {
        let script =
            Compiler::new()
                .compile(text.as_bytes())
                .map_err(|e| PolicyError::Compile {
                    path: name.to_owned(),
                    message: e.to_string(),
                })?;
        let problems = capabilities::refused(text);
        if !problems.is_empty() {
            return Err(PolicyError::Refused {
                path: name.to_owned(),
                problems,
            });
        }
        Ok(Policy {
            script: Arc::new(script),
            runtime: runtime(cpu_limit),
        })
    }

    /// Runs the script for one recipient. `message` is the parsed header section
    /// (the same at every message size; body and size tests are refused at load).
    pub fn evaluate(&self, message: Message<'_>, facts: &Facts<'_>) -> Evaluation {
        let mut ctx = self.runtime.filter_parsed(message);
        ctx.set_envelope(Envelope::From, facts.mail_from);
        ctx.set_envelope(Envelope::To, facts.rcpt);
        ctx.set_user_address(facts.rcpt);
        for (name, value) in environment(facts) {
            ctx.set_env_variable(name, value);
        }
        let mut run = Run::default();
        let mut input = Input::script("policy", self.script.clone());
        while let Some(event) = ctx.run(input) {
            input = Input::True;
            match event {
                Ok(event) => run.apply(event),
                Err(err) => run.fail(format!("sieve runtime error: {err:?}")),
            }
        }
        run.finish()
    }
}

/// The runtime with everything coid cannot honour switched off (defence in depth:
/// such scripts were already refused at compile time).
fn runtime(cpu_limit: usize) -> Runtime {
    Runtime::new()
        .with_cpu_limit(cpu_limit)
        .with_max_redirects(0)
        .with_max_out_messages(0)
        .with_max_nested_includes(0)
        .without_capabilities([
            Capability::Vacation,
            Capability::VacationSeconds,
            Capability::Enotify,
            Capability::RedirectDsn,
            Capability::RedirectDeliverBy,
            Capability::Include,
            Capability::EditHeader,
            Capability::Duplicate,
            Capability::ExtLists,
            Capability::ImapSieve,
            Capability::Fcc,
            Capability::MailboxId,
            Capability::SpecialUse,
            Capability::MboxMetadata,
            Capability::ServerMetadata,
            Capability::Convert,
            Capability::Enclose,
            Capability::Replace,
            Capability::While,
            Capability::Expressions,
        ])
}

/// The `vnd.coid.*` environment items for one recipient.
fn environment(facts: &Facts<'_>) -> [(&'static str, String); 8] {
    let c = facts.classification;
    let s = facts.settings;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    [
        ("vnd.coid.class", c.class.as_str().to_owned()),
        ("vnd.coid.chat", yes_no(c.is_chat)),
        ("vnd.coid.signal", c.signal.as_str().to_owned()),
        ("vnd.coid.group-id", c.group_id.clone().unwrap_or_default()),
        ("vnd.coid.coi-enabled", yes_no(s.enabled)),
        (
            "vnd.coid.message-filter",
            s.message_filter.as_str().to_owned(),
        ),
        ("vnd.coid.mailbox-root", s.mailbox_root.clone()),
        ("vnd.coid.chats-folder", s.chats_folder()),
    ]
}

/// Collects the actions of one run.
#[derive(Default)]
struct Run {
    targets: Vec<Target>,
    discard: bool,
    reject: Option<String>,
    failure: Option<String>,
}

impl Run {
    fn apply(&mut self, event: Event) {
        if self.failure.is_some() {
            return;
        }
        match event {
            Event::Keep { flags, .. } => self.targets.push(Target {
                folder: None,
                flags,
                create: false,
            }),
            Event::FileInto {
                folder,
                flags,
                create,
                ..
            } => {
                let folder = (!folder.eq_ignore_ascii_case("INBOX")).then_some(folder);
                self.targets.push(Target {
                    folder,
                    flags,
                    create,
                });
            }
            Event::Discard => self.discard = true,
            Event::Reject { reason, .. } => self.reject = Some(reason),
            other => self.fail(format!("unsupported sieve event {other:?}")),
        }
    }

    fn fail(&mut self, reason: String) {
        self.failure.get_or_insert(reason);
    }

    fn finish(self) -> Evaluation {
        if let Some(reason) = self.failure {
            return Evaluation::fallback(reason);
        }
        let verdict = if let Some(reason) = self.reject {
            Verdict::Reject(reason)
        } else if !self.targets.is_empty() {
            Verdict::Deliver(self.targets)
        } else if self.discard {
            Verdict::Discard
        } else {
            Verdict::Deliver(vec![Target::inbox()])
        };
        Evaluation {
            verdict,
            warning: None,
        }
    }
}

#[cfg(test)]
mod tests;
