//! When coid delivered each message, from its own log (`COID_LOG=info`, tracing's
//! default format with RFC 3339 UTC timestamps in µs, maybe with ANSI colours): the
//! pipeline logs `delivered` once per stored copy, inside the `message` span that
//! carries `msg_id`, right after Dovecot's reply and before coid answers Postfix. That
//! is the start of the delivery-to-push latency: it is on the same clock as the
//! receiver's arrival times, and it is per message, to the µs. The push worker logs
//! `deltachat notification delivered` with the token's id (`token=`) for each Delta
//! Chat notification answered 2xx: [`notified`] counts them per token id.

use std::collections::HashMap;

use crate::common::coid::strip_ansi;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Message-ID (bare, as the push payload's `msg-id`) → unix µs of its `delivered`
/// line. Panics on a message delivered twice.
pub fn delivered(log: &str) -> HashMap<String, i64> {
    let mut at = HashMap::new();
    for line in log.lines().map(strip_ansi) {
        let Some((id, us)) = parse(&line) else {
            continue;
        };
        assert!(at.insert(id.clone(), us).is_none(), "{id} delivered twice");
    }
    at
}

/// Token id → `deltachat notification delivered` lines naming it.
pub fn notified(log: &str) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for line in log.lines().map(strip_ansi) {
        if !line.contains(" deltachat notification delivered ") {
            continue;
        }
        let id = field(&line, "token").unwrap_or_default();
        *count.entry(id.to_owned()).or_default() += 1;
    }
    count
}

/// The value of the first `name=` in a tracing line, without quotes.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let value = line.split(&format!("{name}=")).nth(1)?;
    Some(value.split([' ', '}']).next()?.trim_matches('"'))
}

fn parse(line: &str) -> Option<(String, i64)> {
    if !line.contains("coid::pipeline: delivered ") {
        return None;
    }
    let stamp = line.split_whitespace().next()?;
    let when = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    let id = field(line, "msg_id")?;
    let us = i64::try_from(when.unix_timestamp_nanos() / 1000).ok()?;
    Some((id.to_owned(), us))
}
