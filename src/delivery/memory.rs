//! A test-only backend that keeps nothing but a record: each copy is accepted,
//! refused, failed or left unanswered as the test says, per recipient and folder, so
//! the pipeline's combination and partial-failure logic can be unit-tested without a
//! store (the real stores are tested end to end under `tests/`).

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Backend, BoxFuture, Delivery, Job, Message, Outcome, Temporary};

/// What the backend does with one copy.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Sets this outcome.
    Answer(Outcome),
    /// Leaves the copy unanswered (a backend that lost track of it).
    Silent,
}

/// Accepts every copy unless told otherwise; remembers every job it was given.
#[derive(Default)]
pub struct Memory {
    rules: HashMap<(String, Option<String>), Behaviour>,
    whole: Option<Temporary>,
    seen: Mutex<Vec<Job>>,
}

impl Memory {
    /// The copy for `rcpt` in `folder` (`None`: INBOX) gets `behaviour`.
    pub fn on(mut self, rcpt: &str, folder: Option<&str>, behaviour: Behaviour) -> Memory {
        let key = (rcpt.to_owned(), folder.map(str::to_owned));
        self.rules.insert(key, behaviour);
        self
    }

    /// `rcpt`'s INBOX copy gets `outcome`.
    pub fn answer(self, rcpt: &str, outcome: Outcome) -> Memory {
        self.on(rcpt, None, Behaviour::Answer(outcome))
    }

    /// Every copy fails with `cause` (the store is gone).
    pub fn failing(mut self, cause: Temporary) -> Memory {
        self.whole = Some(cause);
        self
    }

    /// The jobs delivered so far, in order.
    pub fn jobs(&self) -> Vec<Job> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn behaviour(&self, job: &Job) -> Behaviour {
        if let Some(cause) = &self.whole {
            return Behaviour::Answer(Outcome::Temporary(cause.clone()));
        }
        let key = (job.rcpt.clone(), job.target.folder.clone());
        self.rules
            .get(&key)
            .cloned()
            .unwrap_or(Behaviour::Answer(Outcome::Delivered))
    }
}

impl Backend for Memory {
    fn deliver<'a>(&'a self, _: &'a Message<'a>, copies: &'a mut [Delivery]) -> BoxFuture<'a, ()> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.extend(copies.iter().map(|c| c.job.clone()));
        }
        for copy in copies.iter_mut() {
            if let Behaviour::Answer(outcome) = self.behaviour(&copy.job) {
                copy.outcome = outcome;
            }
        }
        Box::pin(async {})
    }
}
