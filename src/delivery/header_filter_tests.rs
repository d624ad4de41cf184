//! The trusted headers against hostile header sections: what the store reads after
//! coid's fields ([`route_headers`]) and the filtered message must hold exactly coid's
//! `X-Coid-*` fields with exactly coid's values, and the body must stay byte for byte
//! (issue 12, bug 2).
//!
//! The store is modelled by [`dovecot_fields`], a reading of Dovecot's
//! `src/lib-mail/message-header-parser.c` (`message_parse_header_next`).

use super::*;
use crate::delivery::route::route_headers;
use crate::policy::Target;

/// Feeds `input` to a fresh filter in chunks of `n` bytes.
fn filter(input: &[u8], n: usize) -> Vec<u8> {
    let mut f = HeaderFilter::new();
    let mut out = Vec::new();
    for chunk in input.chunks(n.max(1)) {
        f.push(chunk, &mut out);
    }
    f.finish(&mut out);
    out
}

/// The header fields (name, unfolded value) as Dovecot reads them: a line ends at LF
/// and a CR right before it is dropped; an empty line ends the section; a line that
/// starts with a space or a tab continues the field before it (the first line of all
/// is a field of its own, whatever it starts with); the name is what precedes the
/// colon without the blanks before it, read as a C string (cut at a NUL); a line
/// without a colon is all name; the value skips the blanks after the colon.
fn dovecot_fields(raw: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let (line, tail) = match memchr::memchr(b'\n', rest) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        rest = tail;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (line.first(), fields.last_mut()) {
            (None, _) => break,
            (Some(b' ' | b'\t'), Some((_, value))) => value.extend_from_slice(line),
            _ => fields.push(split_field(line)),
        }
    }
    fields
}

fn split_field(line: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (name, value) = match memchr::memchr(b':', line) {
        Some(colon) => (&line[..colon], &line[colon + 1..]),
        None => (line, &[][..]),
    };
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    let name = name.trim_ascii_end();
    (name.to_vec(), value.trim_ascii_start().to_vec())
}

/// The `X-Coid-*` fields the store sees in what coid sends for `target`.
fn trusted_seen(target: &Target, message: &[u8], chunk: usize) -> Vec<(String, String)> {
    let mut sent = route_headers(target, '/');
    sent.extend_from_slice(&filter(message, chunk));
    dovecot_fields(&sent)
        .into_iter()
        .filter(|(name, _)| name.len() >= 7 && name[..7].eq_ignore_ascii_case(b"x-coid-"))
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

fn routed(create: bool) -> Target {
    Target {
        folder: Some("COI/Chats".into()),
        flags: vec!["$Chat".into()],
        create,
    }
}

fn field(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// Hostile header sections, each one built against one reading of the trusted
/// headers, with `X-Coid-*` copies after the first empty line (body: they stay).
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let mb = 1024 * 1024;
    let mut cases: Vec<(&'static str, Vec<u8>)> = vec![
        ("leading fold", b" Evil6 \\Deleted\r\nSubject: x\r\n\r\n".to_vec()),
        ("leading folds, tab and space", b"\t\\Deleted\r\n \\Seen\r\nSubject: x\r\n\r\n".to_vec()),
        ("leading fold, LF only", b" \\Deleted\nSubject: x\n\n".to_vec()),
        ("leading fold, CR only", b" \\Deleted\rSubject: x\r\r\n\r\n".to_vec()),
        // Found by fuzz/rewrite: mail-parser skips a leading form feed.
        ("a form feed before the name", b"From: a\r\n\x0cX-Coid-Folder: Trash\r\nSubject: x\r\n\r\n".to_vec()),
        // Found by fuzz/rewrite: mail-parser ends a line at a lone CR.
        (
            "a name with lone CRs and a blank",
            b"From: a\r\n\r\r \r\rX-Coid-Create: yes\r\nFoo\rX-Coid-Folder: Trash\r\nSubject: x\r\n\r\n"
                .to_vec(),
        ),
        // Found by fuzz/rewrite: mail-parser skips the colons and reads X-Coid-Folder.
        (
            "a nameless line",
            b"From: a\r\n::::X-Coid-Folder:::: Trash\r\n \\Deleted\r\n\r:X-Coid-Flags: \\Seen\r\nSubject: x\r\n\r\n"
                .to_vec(),
        ),
        (
            "folded copies, any case",
            b"From: a\r\nX-Coid-Folder: Trash\r\n\tmore\r\nx-coid-FLAGS:\r\n \\Deleted\r\n\
              X-COID-CREATE : yes\r\nX-Coid-Folder\r\n \\Seen\r\nSubject: s\r\n\r\n"
                .to_vec(),
        ),
        ("CR-only line ends", b"Subject: x\rX-Coid-Flags: \\Deleted\r\r\n\r\n".to_vec()),
        (
            "a line that is only a CR",
            b"Subject: x\r\n\r\r\nX-Coid-Folder: Trash\r\nX-Coid-Flags: \\Deleted\r\n\r\n".to_vec(),
        ),
        ("a CR before the name", b"\rX-Coid-Folder: Trash\r\n \\Deleted\r\n\r\n".to_vec()),
        ("a CR, then a fold, at the top", b"\r \\Deleted\r\nSubject: x\r\n\r\n".to_vec()),
        (
            "LF-only line ends",
            b"Subject: x\nX-Coid-Folder: Trash\n \\Deleted\nX-COID-CREATE: yes\n\n".to_vec(),
        ),
        (
            "NUL",
            b"X-Coid-Folder\0: Trash\r\nX-Coid\0-Flags: \\Deleted\r\n\0X-Coid-Create: yes\r\n\
              Subject: a\0b\r\n \\Seen\r\n\r\n"
                .to_vec(),
        ),
        ("NUL line at the top", b"\0\r\n \\Deleted\r\n\r\n".to_vec()),
        // Found by fuzz/rewrite: a lone CR before the name, and a fold under a line
        // without a colon, which mail-parser reads as X-Coid fields.
        (
            "a CR before a name, mid-header",
            b"Subject: x\r\n\rX-Coid-Flags: \\Deleted\n\r\n".to_vec(),
        ),
        (
            "a fold under a line without a colon",
            b"Subject: x\r\nno colon here\r\n X-Coid-Flags: \\Deleted\r\n\r\n".to_vec(),
        ),
        (
            "8-bit bytes",
            b"X-Coid-F\xf6lder: Trash\r\nSubj\xe9ct: \xff\r\n \\Deleted\r\n\xc3\xa4X-Coid-Flags: x\r\n\r\n"
                .to_vec(),
        ),
    ];
    let mut long_value = b"X-Coid-Flags: ".to_vec();
    long_value.resize(mb, b'a');
    long_value.extend_from_slice(b"\r\n \\Deleted\r\nSubject: x\r\n\r\n");
    cases.push(("a 1 MB trusted line", long_value));
    let mut long_subject = b"Subject: ".to_vec();
    long_subject.resize(mb, b'b');
    long_subject.extend_from_slice(b"\r\nX-Coid-Folder: Trash\r\n\r\n");
    cases.push(("a 1 MB line, then a copy", long_subject));
    let mut long_name = b"X-Coid-".to_vec();
    long_name.resize(mb, b'c');
    long_name.extend_from_slice(b": v\r\n\tw\r\n\r\n");
    cases.push(("a 1 MB trusted name", long_name));
    let mut long_fold = b" ".to_vec();
    long_fold.resize(mb, b'd');
    long_fold.extend_from_slice(b"\r\nSubject: x\r\n\r\n");
    cases.push(("a 1 MB leading fold", long_fold));
    for (_, raw) in &mut cases {
        raw.extend_from_slice(BODY);
    }
    cases
}

/// What follows the header section in every hostile case: copies of the trusted
/// headers, folded, with lone CRs and LFs. Body, so it must reach the store unchanged.
const BODY: &[u8] = b"X-Coid-Folder: Trash\r\n \\Deleted\r\nx-coid-flags: \\Seen\n\r\r\nend\r";

const CHUNKS: [usize; 5] = [1, 2, 7, 4096, usize::MAX];

#[test]
fn the_store_sees_exactly_coids_trusted_headers() {
    let both = vec![
        field("X-Coid-Folder", "COI/Chats"),
        field("X-Coid-Flags", "$Chat"),
        field("X-Coid-Create", "yes"),
    ];
    let no_create = both[..2].to_vec();
    let mut failures = Vec::new();
    for (what, raw) in hostile() {
        for chunk in CHUNKS {
            for (target, want) in [
                (routed(true), both.clone()),
                (routed(false), no_create.clone()),
                (Target::inbox(), Vec::new()),
            ] {
                let seen = trusted_seen(&target, &raw, chunk);
                if seen != want {
                    failures.push(format!("{what} (chunk {chunk}): {seen:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same as [`trusted_seen`], read by mail-parser (what coid and many tools use).
fn trusted_seen_by_mail_parser(target: &Target, message: &[u8]) -> Vec<(String, String)> {
    let mut sent = route_headers(target, '/');
    sent.extend_from_slice(&filter(message, usize::MAX));
    let parsed = crate::parsed::header(&sent);
    parsed
        .headers()
        .iter()
        .filter(|h| h.name().to_ascii_lowercase().starts_with("x-coid-"))
        .map(|h| {
            let value = String::from_utf8_lossy(
                sent.get(h.offset_start() as usize..h.offset_end() as usize)
                    .unwrap_or_default(),
            );
            (h.name().to_owned(), value.trim().to_owned())
        })
        .collect()
}

#[test]
fn mail_parser_sees_exactly_coids_trusted_headers_too() {
    let want = vec![
        field("X-Coid-Folder", "COI/Chats"),
        field("X-Coid-Flags", "$Chat"),
        field("X-Coid-Create", "yes"),
    ];
    let mut failures = Vec::new();
    for (what, raw) in hostile() {
        let seen = trusted_seen_by_mail_parser(&routed(true), &raw);
        if seen != want {
            failures.push(format!("{what}: {seen:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_output_never_starts_with_a_continuation_line() {
    for (what, raw) in hostile() {
        for chunk in CHUNKS {
            let out = filter(&raw, chunk);
            assert!(
                !matches!(out.first(), Some(b' ' | b'\t')),
                "{what} (chunk {chunk})"
            );
        }
    }
}

#[test]
fn the_body_stays_byte_for_byte() {
    for (what, raw) in hostile() {
        for chunk in CHUNKS {
            let out = filter(&raw, chunk);
            assert!(out.ends_with(BODY), "{what} (chunk {chunk})");
        }
    }
}

#[test]
fn fields_that_are_not_coids_stay_byte_for_byte() {
    let raw = b"Subject: x\rX-Coid-Flags: y\r\r\n\tz\r\nX-Coidless: ok\r\n\0: n\r\n\
        \xc3\xa4: 8bit\r\nno colon\r\n\r\r\nX-Co\r\n\r\nbody";
    for chunk in CHUNKS {
        assert_eq!(filter(raw, chunk), raw, "chunk {chunk}");
    }
}

#[test]
fn a_header_section_cut_short_is_flushed() {
    for (raw, want) in [
        (&b"Subject: x"[..], &b"Subject: x"[..]),
        (b"X-Co", b"X-Co"),
        (b"X-Coid-Fol", b""),
        (b"Subject: x\r\n\r", b"Subject: x\r\n\r"),
        (b" fold", b""),
    ] {
        for chunk in CHUNKS {
            assert_eq!(filter(raw, chunk), want, "{raw:?} chunk {chunk}");
        }
    }
}
