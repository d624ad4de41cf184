//! Classify and rewrite: the message parsed as the pipeline parses it
//! (`pipeline::parse_for_policy`, `classify::classify`), the shipped policy run on it
//! for a COI user with message-filter `active`, then, for every target the policy
//! chose and one the input names, the bytes coid sends to Dovecot: `delivery::route`'s
//! trusted headers, the message through `delivery::stream::HeaderFilter`, all through
//! `DotStuffer`, as `delivery::dovecot` streams them; read back as Dovecot's LMTP
//! server reads DATA (smtp-proto's receiver undoes the dot-stuffing).
//!
//! The property (issue 12, bug 2): what Dovecot's `sieve_before` script reads has
//! exactly coid's trusted headers (`X-Coid-Folder`, `X-Coid-Flags`, `X-Coid-Create`)
//! with exactly coid's values: none for a plain keep, no sender-made copy, nothing
//! that continues or replaces coid's lines. Checked with two readers: mail-parser
//! (the parser coid itself uses), and a plain RFC 5322 reader (a field runs until the
//! next line that does not start with a space or tab; the header ends at the first
//! empty line), which is how Dovecot unfolds. Also: the filter gives the same bytes
//! whatever pieces the message comes in, and no bare LF reaches Dovecot.
//!
//! mail-parser is given the header section only, up to the empty line that ends it for
//! Dovecot, as coid itself gives it (`Spooled::header_block`): the body is the
//! sender's and passes unchanged, and mail-parser reads a body that starts with a
//! space or tab as more header (`\r\n\r\n\tX-Coid-Folder: …` found by this target),
//! which no rewrite of the header section can change. The RFC 5322 reader, which is
//! Dovecot's view, still reads the whole message.
//!
//! Input: `<folder>\t<flags>\t<create>\t<separator>` NUL `<message>`; without a NUL
//! the whole input is the message and only the policy's targets are tried. An empty
//! folder is INBOX; flags are space separated; create is `1` or not.

#![no_main]

use std::sync::OnceLock;

use coid::classify::classify;
use coid::config::Config;
use coid::delivery::TRUSTED_HEADER_PREFIX;
use coid::delivery::route::route_headers;
use coid::delivery::stream::{DotStuffer, HeaderFilter, Transform};
use coid::pipeline::{MAX_HEADER, parse_for_policy};
use coid::policy::{Facts, Policy, Target, Verdict};
use coid::spool::Spooled;
use coid::store::{CoiSettings, MessageFilter};
use coid_fuzz::now;
use libfuzzer_sys::fuzz_target;
use mail_parser::MessageParser;
use smtp_proto::request::receiver::DataReceiver;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        Policy::load("", Config::default().policy.cpu_limit).expect("default policy")
    })
}

/// The target the input names, and the store's separator.
fn named_target(spec: &[u8]) -> (Target, char) {
    let spec = String::from_utf8_lossy(spec);
    let mut fields = spec.split('\t');
    let folder = fields.next().unwrap_or_default();
    let flags = fields.next().unwrap_or_default();
    let create = fields.next().unwrap_or_default() == "1";
    let separator = fields.next().and_then(|s| s.chars().next()).unwrap_or('/');
    let target = Target {
        folder: (!folder.is_empty()).then(|| folder.to_owned()),
        flags: flags
            .split(' ')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect(),
        create,
    };
    (target, separator)
}

/// The bytes `delivery::dovecot` sends for `message` to `target` (after DATA), the
/// message read from the spool in pieces of `piece` bytes.
fn sent(message: &[u8], target: &Target, separator: char, piece: usize) -> (Vec<u8>, Vec<u8>) {
    let headers = route_headers(target, separator);
    let mut stuffer = DotStuffer::default();
    let mut filter = HeaderFilter::new();
    let mut out = Vec::new();
    let mut all_filtered = Vec::new();
    stuffer.push(&headers, &mut out);
    let mut filtered = Vec::new();
    for read in message.chunks(piece.max(1)) {
        filtered.clear();
        filter.push(read, &mut filtered);
        all_filtered.extend_from_slice(&filtered);
        stuffer.push(&filtered, &mut out);
    }
    filtered.clear();
    filter.finish(&mut filtered);
    all_filtered.extend_from_slice(&filtered);
    stuffer.push(&filtered, &mut out);
    stuffer.finish(&mut out);
    (out, all_filtered)
}

/// What Dovecot's LMTP server stores from DATA bytes `sent`.
fn received(sent: &[u8]) -> Vec<u8> {
    let mut receiver = DataReceiver::new();
    // smtp-proto's receiver starts mid-line; DATA starts at a line start (the CRLF of
    // the DATA command), where a dot is stuffing and `.CRLF` ends an empty message.
    let mut stored = Vec::new();
    receiver.ingest(&mut b"\r\n".iter(), &mut stored);
    stored.clear();
    let mut bytes = sent.iter();
    assert!(receiver.ingest(&mut bytes, &mut stored), "DATA did not end");
    assert!(bytes.as_slice().is_empty(), "DATA ended early");
    stored
}

/// `(name, raw value)` of coid's header lines, as coid wrote them.
fn written(headers: &[u8]) -> Vec<(String, Vec<u8>)> {
    headers
        .split_inclusive(|&b| b == b'\n')
        .map(|line| {
            let colon = line.iter().position(|&b| b == b':').expect("colon");
            (
                String::from_utf8_lossy(&line[..colon]).into_owned(),
                line[colon + 1..].to_vec(),
            )
        })
        .collect()
}

fn is_trusted(name: &str) -> bool {
    name.len() >= TRUSTED_HEADER_PREFIX.len()
        && name.as_bytes()[..TRUSTED_HEADER_PREFIX.len()]
            .eq_ignore_ascii_case(TRUSTED_HEADER_PREFIX.as_bytes())
}

/// The trusted fields as a plain RFC 5322 reader unfolds them.
fn unfolded(stored: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    // Whether the field being read is a trusted one (its continuation lines join it).
    let mut current: Option<usize> = None;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(i) = current {
                fields[i].1.extend_from_slice(line);
            }
            continue;
        }
        current = None;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim_end_matches([' ', '\t']);
        if is_trusted(name) {
            fields.push((name.to_owned(), line[colon + 1..].to_vec()));
            current = Some(fields.len() - 1);
        }
    }
    fields
}

/// The trusted fields as mail-parser reads them (raw values).
/// `stored` up to and with the empty line that ends its header section for Dovecot
/// (a line that is just LF or CR LF); all of it when there is none.
fn header_section(stored: &[u8]) -> &[u8] {
    let mut end = 0;
    for line in stored.split_inclusive(|&b| b == b'\n') {
        end += line.len();
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    &stored[..end]
}

fn parsed(stored: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some(message) = MessageParser::new().parse(stored) else {
        return Vec::new();
    };
    let Some(root) = message.parts.first() else {
        return Vec::new();
    };
    root.headers
        .iter()
        .filter(|h| is_trusted(h.name.as_str()))
        .map(|h| {
            let value = stored
                .get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default();
            (h.name.as_str().to_owned(), value.to_vec())
        })
        .collect()
}

fn check(message: &[u8], target: &Target, separator: char, piece: usize) {
    let headers = route_headers(target, separator);
    let (whole, filtered_whole) = sent(message, target, separator, message.len());
    let (pieces, filtered_pieces) = sent(message, target, separator, piece);
    assert_eq!(
        filtered_whole, filtered_pieces,
        "the header filter depends on how the message was read"
    );
    assert_eq!(whole, pieces);
    let body = whole.strip_suffix(b".\r\n").expect("terminator");
    assert!(
        !body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') && body.first() != Some(&b'\n'),
        "a bare LF reaches Dovecot"
    );
    let stored = received(&whole);
    let want = written(&headers);
    let plain = unfolded(&stored);
    assert_eq!(
        plain,
        want,
        "trusted headers differ (RFC 5322 reader) for {target:?}; stored {:?}",
        String::from_utf8_lossy(&stored[..stored.len().min(400)])
    );
    let mine = parsed(header_section(&stored));
    assert_eq!(
        mine,
        want,
        "trusted headers differ (mail-parser) for {target:?}; stored {:?}",
        String::from_utf8_lossy(&stored[..stored.len().min(400)])
    );
}

fuzz_target!(|data: &[u8]| {
    let (named, message) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (Some(named_target(&data[..nul])), &data[nul + 1..]),
        None => (None, data),
    };
    let piece = message.len() % 13 + 1;
    let body = Spooled::Memory(message.to_vec());
    let header = now(body.header_block(MAX_HEADER)).expect("in memory");
    let parsed = parse_for_policy(&header);
    let classification = classify(&parsed);
    let settings = CoiSettings {
        enabled: true,
        message_filter: MessageFilter::Active,
        mailbox_root: "COI".into(),
    };
    let facts = Facts {
        mail_from: "sender@example.org",
        rcpt: "user@example.org",
        classification: &classification,
        settings: &settings,
    };
    let mut targets: Vec<(Target, char)> = Vec::new();
    if let Verdict::Deliver(chosen) = policy().evaluate(parsed.clone(), &facts).verdict {
        targets.extend(chosen.into_iter().map(|t| (t, '.')));
    }
    targets.extend(named);
    for (target, separator) in &targets {
        check(message, target, *separator, piece);
    }
});
