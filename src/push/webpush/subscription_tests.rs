//! Subscription validation: both vocabularies, limits, keys, and the listing form.

use super::*;

/// A real P-256 point and auth secret (RFC 8291 §5 example keys).
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

fn body(msgtype: &str, endpoint: &str) -> String {
    format!(
        r#"{{"client":"OX COI","device":"phone","msgtype":"{msgtype}","extra":1,
            "resource":{{"endpoint":"{endpoint}","keys":{{"p256dh":"{P256DH}","auth":"{AUTH}"}}}}}}"#
    )
}

#[test]
fn both_msgtype_vocabularies_are_accepted() {
    for (given, parsed) in [
        ("chat", MsgType::Chat),
        ("mail", MsgType::Mail),
        ("email", MsgType::Mail),
        ("all", MsgType::All),
        ("any", MsgType::All),
    ] {
        let req = parse_request("31754ee7-d3ee-4226", &body(given, "https://push.example/x"))
            .unwrap_or_else(|e| panic!("{given}: {e}"));
        assert_eq!(req.msgtype(), parsed);
        assert_eq!(req.msgtype, given, "kept as given");
    }
    assert_eq!(
        parse_request("abcdefghij", &body("Chat", "https://p.example/")),
        Err(Invalid::MsgType("Chat".into()))
    );
}

#[test]
fn msgtype_matching() {
    assert!(MsgType::Chat.wants(true) && !MsgType::Chat.wants(false));
    assert!(MsgType::Mail.wants(false) && !MsgType::Mail.wants(true));
    assert!(MsgType::All.wants(true) && MsgType::All.wants(false));
}

#[test]
fn ids() {
    assert!(valid_id("31754ee7-d3ee-4226-b112-6895ed26fcf8"));
    assert!(valid_id("dovecot:style.id"));
    for bad in ["", "a/b", "with space", "ü", &"x".repeat(MAX_ID_LEN + 1)] {
        assert!(!valid_id(bad), "{bad:?}");
    }
}

#[test]
fn refusals() {
    let ok = body("chat", "https://push.example/x");
    assert_eq!(parse_request("a/b", &ok), Err(Invalid::Id));
    assert!(matches!(parse_request("abc", "[1]"), Err(Invalid::Json(_))));
    assert!(matches!(
        parse_request("abc", r#"{"client":"c"}"#),
        Err(Invalid::Json(_))
    ));
    assert!(matches!(
        parse_request("abc", &ok.replace("\"phone\"", "null")),
        Err(Invalid::Json(_))
    ));
    let long = ok.replace("OX COI", &"n".repeat(MAX_NAME_LEN + 1));
    assert_eq!(parse_request("abc", &long), Err(Invalid::TooLong("client")));
    assert_eq!(
        parse_request("abc", &"x".repeat(MAX_JSON_LEN + 1)),
        Err(Invalid::TooLarge)
    );
    for endpoint in [
        "ftp://x.example/",
        "not a url",
        "https://user:pw@x.example/",
    ] {
        assert!(
            matches!(
                parse_request("abc", &body("chat", endpoint)),
                Err(Invalid::Endpoint(_))
            ),
            "{endpoint}"
        );
    }
    let bad_key = ok.replace(P256DH, "BAAA");
    assert_eq!(parse_request("abc", &bad_key), Err(Invalid::Key("p256dh")));
    let bad_auth = ok.replace(AUTH, "c2hvcnQ");
    assert_eq!(parse_request("abc", &bad_auth), Err(Invalid::Key("auth")));
}

#[test]
fn keys_with_padding_or_standard_alphabet_decode() {
    let padded = body("chat", "https://p.example/").replace(AUTH, "BTBZMqHH6r4Tts7J/aSIgg==");
    assert!(parse_request("abc", &padded).is_ok());
}

#[test]
fn listing_form_adds_created_and_validated_and_drops_unknown_keys() {
    let req = parse_request("abc", &body("email", "https://push.example:8443/a")).expect("ok");
    let listed = req.listing_json("2026-11-21T10:00:00+00:00", false);
    assert!(
        listed.starts_with(
            r#"{"created":"2026-11-21T10:00:00+00:00","validated":false,"client":"OX COI","#
        ),
        "{listed}"
    );
    assert!(listed.contains(r#""endpoint":"https://push.example:8443/a""#));
    assert!(!listed.contains("extra"), "{listed}");
}

#[test]
fn created_is_rfc3339_like_dovecots() {
    assert_eq!(rfc3339(1_571_242_457), "2019-10-16T16:14:17+00:00");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
}
