//! LMTP in (RFC 2033): the listener side that Postfix's `lmtp(8)` client talks to.
//!
//! `line`, `session`, `reply` and `envelope` are sans-IO; `connection` is the only part
//! that reads and writes a socket; `data_phase` (beside it) holds where a body goes
//! while DATA runs: cut-through to the store, or the spool.

pub mod connection;
pub mod data_phase;
pub mod envelope;
pub mod line;
pub mod reply;
pub mod session;

pub use envelope::{Envelope, PerRcpt, Recipient};
pub use reply::Reply;
pub use session::{Event, Limits, Session};
