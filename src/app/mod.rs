//! The composition root: the one place coid's parts are put together. Config → state
//! store → policy and delivery backend → pipeline → session contexts, with the push
//! hook, worker and dict entries the config turns on ([`build`], [`contexts`]).
//!
//! Data flows one way beneath it (socket → session → pipeline → policy → delivery →
//! push); nothing beneath imports `app`. Both process entry points use it and not
//! each other: `cli/` parses arguments and calls it, `daemon/` runs it under systemd.
//! Failures are typed ([`AppError`]) and carry their exit status.

pub mod build;
pub mod contexts;
mod error;

pub use error::{AppError, exit};
