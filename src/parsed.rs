//! The one way into mail-parser: every message coid parses (classification, the
//! policy, push payloads) goes through here, so it cannot be handed a `Message` that
//! panics when read.
//!
//! mail-parser 0.11 answers `None` for input with no header field at all (an empty
//! body, a body whose first line is empty, a single line without a colon), and
//! `Message::default()`, which callers used in its place, has no parts. Its accessors
//! (`message_id()`, `subject()`, `header()` … on the root part) index `parts[0]` and
//! panic on such a message. What this module returns always has a root part; a message
//! without a header section is an empty header section over the whole input, which
//! RFC 5322 §2.1 allows (the header section may hold no fields) and which every rule
//! reads as plain email.
//!
//! This is the precondition check. The pipeline also runs parsing, classification and
//! the policy under `catch_unwind` (see `crate::pipeline`), so a panic that gets past
//! it defers that one message instead of ending the session.

use mail_parser::{Message, MessageParser, MessagePart, PartType};

/// The whole message (headers and MIME parts), or an empty one when `raw` has no
/// header field.
pub fn whole(raw: &[u8]) -> Message<'_> {
    with_root(MessageParser::new().parse(raw))
}

/// The header section only (`raw` may be a whole message or just its header block),
/// or an empty one when `raw` has no header field.
pub fn header(raw: &[u8]) -> Message<'_> {
    with_root(MessageParser::new().parse_headers(raw))
}

/// True when `message` has the root part every accessor of mail-parser reads.
pub fn has_root(message: &Message<'_>) -> bool {
    !message.parts.is_empty()
}

/// A message with a root part, no header field and an empty body: what coid reads
/// when the input has no header section.
pub fn empty() -> Message<'static> {
    Message {
        parts: vec![MessagePart {
            body: PartType::Text("".into()),
            ..MessagePart::default()
        }],
        ..Message::default()
    }
}

fn with_root(parsed: Option<Message<'_>>) -> Message<'_> {
    match parsed {
        Some(message) if has_root(&message) => message,
        _ => empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs with no header field: mail-parser gives `None` (or a message the old
    /// code replaced with `Message::default()`).
    const HEADERLESS: [&[u8]; 7] = [
        b"",
        b"\r\n",
        b"\r\nbody only\r\n",
        b"\n\nbody after two LFs\n",
        b"hello\r\n",
        b"   ",
        b"\x00\xff\xfe",
    ];

    #[test]
    fn headerless_input_gives_a_readable_empty_message() {
        for raw in HEADERLESS {
            for message in [whole(raw), header(raw)] {
                assert!(has_root(&message), "{raw:?}");
                // The accessors that used to panic on `parts[0]`.
                assert_eq!(message.message_id(), None, "{raw:?}");
                assert_eq!(message.subject(), None, "{raw:?}");
                assert!(message.header("Chat-Version").is_none(), "{raw:?}");
            }
        }
    }

    #[test]
    fn a_message_with_headers_is_parsed_as_before() {
        let raw = b"Message-ID: <a@x>\r\nSubject: hi\r\n\r\nbody\r\n";
        assert_eq!(whole(raw).message_id(), Some("a@x"));
        assert_eq!(header(raw).subject(), Some("hi"));
        assert_eq!(whole(raw).body_text(0).as_deref(), Some("body\r\n"));
    }

    #[test]
    fn the_empty_message_is_what_the_default_lacks() {
        assert!(!has_root(&Message::default()));
        assert!(has_root(&empty()));
    }
}
