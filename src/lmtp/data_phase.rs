//! Where the body of the DATA being received goes, on the I/O side of a session: the
//! state machine of cut-through delivery. `connection.rs` hands each piece of
//! un-stuffed body (from the sans-IO [`super::Session`]) to [`DataPhase::write`] and
//! asks [`DataPhase::finish`] for the replies at the end of DATA.
//!
//! ```text
//! (DATA: the envelope sent ahead to the store, when a pooled connection is idle)
//! Header ──header section complete──▶ Stream (one store transaction open, body goes on as it arrives)
//!    │                                Spool  (several targets: store-and-forward, decisions kept)
//!    │                                Drop   (nothing to store: read and dropped)
//! Spool (backend cannot stream: store-and-forward, decided at the end as always)
//! any ──abort (too big, client gone, session closed)──▶ Idle: a stream is dropped without its end mark
//! ```
//!
//! Bounded: the header section is collected up to [`MAX_HEADER`] bytes (plus one
//! read), a streamed body is kept in memory only up to the spool threshold (the push
//! hook reads small bodies whole), a spooled one moves to disk past it.

use std::path::Path;

use crate::answer::{self, Answer, Own};
use crate::delivery::Announced;
use crate::lmtp::{Envelope, PerRcpt, Reply};
use crate::pipeline::{After, Early, MAX_HEADER, Pipeline, Plan};
use crate::spool::{SpoolWriter, header_end};

/// The header section so far, and how far it was searched for its end.
#[derive(Debug, Default)]
pub struct HeaderCollector {
    bytes: Vec<u8>,
    /// Bytes already searched for the empty line without finding it.
    searched: usize,
}

impl HeaderCollector {
    /// Appends body bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// The length of the header section once it can be told: up to and including its
    /// empty line, else [`MAX_HEADER`] bytes once that many arrived, else (at the end
    /// of DATA, `complete`) everything. The same bytes `Spooled::header_block` reads
    /// from a whole message. Each byte is searched about once, however the body is cut.
    pub fn header_len(&mut self, complete: bool) -> Option<usize> {
        let window = self.bytes.get(..self.bytes.len().min(MAX_HEADER))?;
        // An empty line found now may start up to three bytes before the new ones.
        let from = self.searched.saturating_sub(3);
        let found = window
            .get(from..)
            .and_then(header_end)
            .map(|end| from + end);
        self.searched = window.len();
        found.or_else(|| (complete || window.len() >= MAX_HEADER).then_some(window.len()))
    }

    /// Everything collected.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The state of one DATA phase.
#[derive(Default)]
enum State {
    /// No DATA in progress (or it was aborted).
    #[default]
    Idle,
    /// Collecting the header section; nothing decided yet. `announced`: the envelope
    /// already sent to the store, its replies not read.
    Header {
        collector: HeaderCollector,
        announced: Option<Box<Announced>>,
    },
    /// Decided; the store transaction is open and the body goes on as it arrives.
    /// `kept`: the body so far while it is within the spool threshold.
    Stream {
        early: Box<Early>,
        transfer: Box<crate::delivery::Transfer>,
        kept: Option<Vec<u8>>,
    },
    /// The body is spooled and delivered after its end; `early` is `None` when the
    /// backend cannot stream (decided at the end, as store-and-forward always did).
    Spool {
        early: Option<Box<Early>>,
        spool: Box<SpoolWriter>,
        failed: bool,
    },
    /// Decided, nothing to store: the body is dropped.
    Drop(Box<Early>),
}

/// Where the body of the current DATA goes.
pub struct DataPhase {
    state: State,
    /// Body bytes received in this DATA.
    size: u64,
    spool_threshold: usize,
}

impl DataPhase {
    /// Nothing in progress; bodies past `spool_threshold` bytes are not held in memory.
    pub fn new(spool_threshold: usize) -> DataPhase {
        DataPhase {
            state: State::Idle,
            size: 0,
            spool_threshold,
        }
    }

    /// DATA was accepted: cut-through when the backend can stream (the transaction's
    /// `envelope` sent ahead to the store), else spooled.
    pub async fn begin(
        &mut self,
        pipeline: &Pipeline,
        envelope: Option<&Envelope>,
        spool_dir: &Path,
    ) {
        self.size = 0;
        self.state = if pipeline.streams() {
            let announced = match envelope {
                Some(envelope) => pipeline.announce(envelope).await.map(Box::new),
                None => None,
            };
            State::Header {
                collector: HeaderCollector::default(),
                announced,
            }
        } else {
            State::Spool {
                early: None,
                spool: Box::new(SpoolWriter::new(self.spool_threshold, spool_dir)),
                failed: false,
            }
        };
    }

    /// The DATA is over without a delivery (too big, the session closed): an open
    /// store transaction is dropped without its end mark, so the store keeps nothing.
    pub fn abort(&mut self) {
        self.state = State::Idle;
    }

    /// The open store transaction's deadline (`transaction_timeout_secs`), which also
    /// bounds how long the client may take to send the rest of its DATA.
    pub fn store_deadline(&self) -> Option<tokio::time::Instant> {
        match &self.state {
            State::Stream { transfer, .. } => transfer.deadline(),
            State::Header {
                announced: Some(announced),
                ..
            } => Some(announced.deadline()),
            _ => None,
        }
    }

    /// The store deadline passed while waiting for the client: the store connection
    /// is dropped without the end mark; the rest of DATA is still read, and its
    /// recipients get 4xx at its end. An envelope sent ahead is dropped: the message
    /// opens its transaction once decided, as without one.
    pub fn expire(&mut self) {
        match &mut self.state {
            State::Stream { transfer, .. } => transfer.expire(),
            State::Header { announced, .. } => *announced = None,
            _ => {}
        }
    }

    /// Takes body bytes; the header section's end decides the message and opens the
    /// store transaction (`envelope`: the transaction's, while DATA runs).
    pub async fn write(
        &mut self,
        bytes: &[u8],
        pipeline: &Pipeline,
        envelope: Option<&Envelope>,
        spool_dir: &Path,
    ) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if let State::Header { collector, .. } = &mut self.state {
            collector.push(bytes);
            if let Some(len) = collector.header_len(false) {
                self.decide(len, pipeline, envelope, spool_dir).await;
            }
            return;
        }
        self.pass_on(bytes).await;
    }

    /// The end of DATA: the replies, one per recipient, and what follows them.
    pub async fn finish(
        &mut self,
        pipeline: &Pipeline,
        envelope: &Envelope,
        spool_dir: &Path,
    ) -> (PerRcpt<Reply>, After) {
        if let State::Header { collector, .. } = &mut self.state {
            let len = collector.header_len(true).unwrap_or_default();
            self.decide(len, pipeline, Some(envelope), spool_dir).await;
        }
        let spool_failed = || {
            let replies = envelope.per_rcpt(|_, _| answer::reply(&Answer::Own(Own::Spool)));
            (replies, After::default())
        };
        match std::mem::take(&mut self.state) {
            State::Stream {
                early,
                transfer,
                kept,
            } => {
                let body = kept.as_deref();
                pipeline
                    .finish_streamed(envelope, *early, transfer, body, self.size)
                    .await
            }
            State::Spool {
                early,
                spool,
                failed: false,
            } => match spool.finish().await {
                Ok(body) => match early {
                    Some(early) => pipeline.finish_spooled(envelope, *early, &body).await,
                    None => pipeline.process(envelope, &body).await,
                },
                Err(err) => {
                    tracing::error!(error = %err, "cannot finish spool file");
                    spool_failed()
                }
            },
            State::Drop(early) => pipeline.finish_dropped(envelope, *early, self.size).await,
            State::Spool { .. } | State::Header { .. } | State::Idle => spool_failed(),
        }
    }

    /// The header section is the first `len` collected bytes: decide, then pass
    /// everything collected on to where the plan says.
    async fn decide(
        &mut self,
        len: usize,
        pipeline: &Pipeline,
        envelope: Option<&Envelope>,
        spool_dir: &Path,
    ) {
        let State::Header {
            collector,
            announced,
        } = std::mem::take(&mut self.state)
        else {
            return;
        };
        let collected = collector.into_bytes();
        let header = collected.get(..len).unwrap_or_default().to_vec();
        let spool = || Box::new(SpoolWriter::new(self.spool_threshold, spool_dir));
        self.state = match envelope {
            None => State::Spool {
                early: None,
                spool: spool(),
                failed: false,
            },
            Some(envelope) => match pipeline
                .decide_early(envelope, header, announced.map(|a| *a))
                .await
            {
                (early, Plan::Stream(transfer)) => State::Stream {
                    early: Box::new(early),
                    transfer,
                    kept: Some(Vec::new()),
                },
                (early, Plan::Spool) => State::Spool {
                    early: Some(Box::new(early)),
                    spool: spool(),
                    failed: false,
                },
                (early, Plan::Drop) => State::Drop(Box::new(early)),
            },
        };
        self.pass_on(&collected).await;
    }

    /// Body bytes after the decision.
    async fn pass_on(&mut self, bytes: &[u8]) {
        match &mut self.state {
            State::Stream { transfer, kept, .. } => {
                if let Some(held) = kept {
                    if held.len() + bytes.len() <= self.spool_threshold {
                        held.extend_from_slice(bytes);
                    } else {
                        *kept = None;
                    }
                }
                transfer.push(bytes).await;
            }
            State::Spool {
                spool,
                failed: failed @ false,
                ..
            } => {
                if let Err(err) = spool.write(bytes).await {
                    tracing::error!(error = %err, "cannot spool message");
                    *failed = true;
                }
            }
            State::Spool { .. } | State::Drop(_) | State::Header { .. } | State::Idle => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header length once `input` arrived in pieces of `n` bytes (`None`: not yet).
    fn len_after(input: &[u8], n: usize, complete: bool) -> Option<usize> {
        let mut c = HeaderCollector::default();
        let mut found = None;
        for piece in input.chunks(n.max(1)) {
            c.push(piece);
            found = found.or(c.header_len(false));
        }
        found.or_else(|| complete.then(|| c.header_len(true)).flatten())
    }

    #[test]
    fn header_ends_at_its_empty_line_however_the_body_is_cut() {
        for (input, want) in [
            (&b"A: 1\r\nB: 2\r\n\r\nbody\r\n"[..], 14),
            (b"A: 1\n\nbody", 6),
            (b"A: 1\r\n\r\n", 8),
        ] {
            for n in [1, 2, 3, 4, 5, 1000] {
                assert_eq!(len_after(input, n, false), Some(want), "{input:?} by {n}");
            }
        }
    }

    #[test]
    fn header_without_an_end_waits_for_max_header_or_the_end_of_data() {
        assert_eq!(len_after(b"A: 1\r\nB: 2\r\n", 3, false), None);
        assert_eq!(len_after(b"A: 1\r\nB: 2\r\n", 3, true), Some(12));
        let long = vec![b'x'; MAX_HEADER + 10];
        assert_eq!(len_after(&long, 4096, false), Some(MAX_HEADER));
        let mut late = vec![b'x'; MAX_HEADER - 1];
        late.extend_from_slice(b"\r\n\r\nbody");
        assert_eq!(len_after(&late, 7000, false), Some(MAX_HEADER));
    }
}
