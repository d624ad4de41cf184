//! Payload fields, truncation and the plaintext budget.

use mail_parser::MessageParser;

use super::*;

fn parse(raw: &str) -> Message<'_> {
    MessageParser::default()
        .parse(raw.as_bytes())
        .expect("test message parses")
}

fn json(p: &Payload) -> serde_json::Value {
    serde_json::from_str(&p.to_json()).expect("valid JSON")
}

const CHAT: &str = "From: \"Bob B.\" <Bob@Example.NET>\r\n\
    Date: Sat, 21 Nov 2026 10:17:49 +0100\r\n\
    Subject: Hello\r\n\
    Message-ID: <chat$group.abc.1@example.net>\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Transfer-Encoding: 8bit\r\n\r\n";

#[test]
fn fields_in_spec_names() {
    let msg = parse(CHAT);
    let stored = Stored {
        folder: "COI/Chats",
        uidvalidity: Some(7),
        uid: Some(42),
    };
    let mut p = Payload::build(&msg, &stored, Some("abc"));
    p.offer_content(&msg, "Grüße\r\n".as_bytes());
    let v = json(&p);
    assert_eq!(v["folder"], "COI/Chats");
    assert_eq!(v["uidvalidity"], 7);
    assert_eq!(v["uid"], 42);
    assert_eq!(v["date"], "2026-11-21T10:17:49+01:00");
    assert_eq!(v["from-email"], "bob@example.net");
    assert_eq!(v["from-name"], "Bob B.");
    assert_eq!(v["subject"], "Hello");
    assert_eq!(v["msg-id"], "chat$group.abc.1@example.net");
    assert_eq!(v["group-id"], "abc");
    assert_eq!(v["content"], "Grüße\r\n");
    assert!(v.get("content-type").is_none(), "plain UTF-8 text: {v}");
    assert!(v.get("content-encoding").is_none(), "8bit: {v}");
    assert!(
        p.to_json().starts_with(r#"{"folder":"#),
        "Dovecot's order: {}",
        p.to_json()
    );
}

#[test]
fn missing_headers_are_left_out() {
    let msg = parse("X-Other: 1\r\n\r\n");
    let p = Payload::build(&msg, &Stored::default(), None);
    assert_eq!(p.to_json(), r#"{"folder":""}"#);
}

#[test]
fn long_text_is_cut_at_a_character_boundary_with_ellipsis() {
    let subject = "ü".repeat(80); // 160 bytes
    let raw = format!(
        "Subject: {subject}\r\nFrom: {}@x.example\r\n\r\n",
        "a".repeat(300)
    );
    let msg = parse(&raw);
    let p = Payload::build(&msg, &Stored::default(), None);
    let v = json(&p);
    let cut_subject = v["subject"].as_str().expect("subject");
    assert_eq!(cut_subject, format!("{}…", "ü".repeat(50)));
    let email = v["from-email"].as_str().expect("email");
    assert!(email.len() <= 254 + '…'.len_utf8() && email.ends_with('…'));
    assert_eq!(cut("añb", 2), "a…");
    assert_eq!(cut("short", 10), "short");
}

#[test]
fn identifiers_are_dropped_not_cut() {
    let raw = format!("Message-ID: <{}@x.example>\r\n\r\n", "m".repeat(200));
    let msg = parse(&raw);
    let p = Payload::build(
        &msg,
        &Stored {
            folder: &"f".repeat(201),
            ..Stored::default()
        },
        Some(&"g".repeat(129)),
    );
    assert_eq!(p.to_json(), "{}");
}

#[test]
fn content_only_when_it_fits_and_is_text() {
    let msg = parse(CHAT);
    let base = Payload::build(&msg, &Stored::default(), None);

    let mut big = base.clone();
    big.offer_content(&msg, "x".repeat(MAX_PLAINTEXT).as_bytes());
    assert!(!big.has_content(), "over budget once wrapped in JSON");

    let fits = MAX_PLAINTEXT - base.to_json().len() - r#","content":"""#.len();
    let mut exact = base.clone();
    exact.offer_content(&msg, "y".repeat(fits).as_bytes());
    assert!(exact.has_content());
    assert_eq!(exact.to_json().len(), MAX_PLAINTEXT);

    let mut binary = base.clone();
    binary.offer_content(&msg, &[0xff, 0xfe]);
    assert!(!binary.has_content());
    let mut nul = base.clone();
    nul.offer_content(&msg, b"a\0b");
    assert!(!nul.has_content());
    assert_eq!(exact.without_content(), base);
}

#[test]
fn non_plain_content_carries_type_and_encoding() {
    let msg = parse(
        "Content-Type: text/html;\r\n charset=iso-8859-1\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n",
    );
    let mut p = Payload::build(&msg, &Stored::default(), None);
    p.offer_content(&msg, b"<p>hi=20</p>");
    let v = json(&p);
    assert_eq!(v["content-type"], "text/html; charset=iso-8859-1");
    assert_eq!(v["content-encoding"], "quoted-printable");
}

#[test]
fn validation_payload() {
    assert_eq!(validation_json("a\"b"), r#"{"validation":"a\"b"}"#);
}

#[test]
fn a_queued_payload_loses_its_content_after_a_413() {
    let raw = format!("{CHAT}body text\r\n");
    let msg = parse(&raw);
    let mut payload = Payload::build(&msg, &Stored::default(), Some("abc"));
    payload.offer_content(&msg, b"body text\r\n");
    assert!(payload.has_content());
    let smaller = Payload::json_without_content(&payload.to_json()).expect("payload JSON");
    assert_eq!(smaller, payload.without_content().to_json());
    assert!(!smaller.contains("content"), "{smaller}");
    assert_eq!(Payload::json_without_content("not json"), None);
}
