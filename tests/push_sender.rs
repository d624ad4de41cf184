//! coid's Web Push sender against a real HTTP push service on loopback that decrypts
//! with Python's `http_ece` and verifies VAPID with `cryptography` (not coid's code):
//! RFC 8291 encryption up to the 3993-byte budget, RFC 8292 VAPID with the port in
//! `aud`, RFC 8030 headers, every push-service answer mapped to its outcome, redirects
//! not followed, and the default endpoint rules refusing loopback.

mod common;

use std::time::Duration;

use coid::push::endpoint::{EndpointPolicy, Refused};
use coid::push::outcome::Outcome;
use coid::push::webpush::MAX_PLAINTEXT;
use coid::push::webpush::sender::{Options, SendError, Sender, Target, Urgency};
use coid::push::webpush::subscription::{decode_auth, decode_p256dh};
use coid::push::webpush::vapid::VapidKey;
use common::push_receiver::{Answer, EndpointKeys, PushReceiver};

const WAIT: Duration = Duration::from_secs(10);

fn target(keys: &EndpointKeys) -> Target {
    Target {
        endpoint: url::Url::parse(&keys.url).expect("url"),
        p256dh: decode_p256dh(&keys.p256dh).expect("p256dh"),
        auth: decode_auth(&keys.auth).expect("auth"),
    }
}

fn sender(allow_private: bool) -> Sender {
    Sender::new(
        VapidKey::generate(),
        "mailto:postmaster@example.org",
        EndpointPolicy { allow_private },
        Duration::from_secs(2),
        4,
    )
    .expect("sender")
}

fn options() -> Options {
    Options {
        ttl: Duration::from_secs(600),
        urgency: Urgency::High,
        topic: Some("coiChats".to_owned()),
        validation: false,
    }
}

#[tokio::test]
async fn encrypted_signed_push_decrypts_elsewhere() {
    let receiver = PushReceiver::start(&[("dev", vec![])]);
    let sender = sender(true);
    let payload = r#"{"folder":"COI/Chats","subject":"Grüße"}"#;
    let attempt = sender
        .send(
            &target(&receiver.keys("dev")),
            payload.as_bytes(),
            &options(),
        )
        .await
        .expect("sent");
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");

    let full = "x".repeat(MAX_PLAINTEXT);
    sender
        .send(&target(&receiver.keys("dev")), full.as_bytes(), &options())
        .await
        .expect("sent");

    let seen = receiver.wait_for_requests(2, WAIT);
    let first = &seen[0];
    assert_eq!(first["plaintext"], payload, "{first:#}");
    assert_eq!(first["vapid_ok"], true, "{first:#}");
    assert_eq!(first["vapid"]["aud"], receiver.origin());
    assert_eq!(first["ttl"], "600");
    assert_eq!(first["urgency"], "high");
    assert_eq!(first["topic"], "coiChats");
    assert_eq!(first["content_encoding"], "aes128gcm");
    assert_eq!(first["validation"], serde_json::Value::Null);
    assert_eq!(
        seen[1]["plaintext"],
        full.as_str(),
        "3993 bytes: {:#}",
        seen[1]["decrypt_error"]
    );
    assert_eq!(seen[1]["body_len"], 4096, "one full record");
}

#[tokio::test]
async fn push_service_answers_map_to_outcomes() {
    // Where the redirects point: a second push service, which must never be asked.
    let elsewhere = PushReceiver::start(&[("dev", vec![])]);
    let there = elsewhere.keys("dev").url;
    let answers = vec![
        Answer::Status(404),
        Answer::Status(410),
        Answer::Status(413),
        Answer::RetryAfter("7"),
        Answer::Status(500),
        Answer::Status(403),
        Answer::Redirect(301, there.clone()),
        Answer::Redirect(307, there),
        Answer::Status(400),
        Answer::Stall(4),
    ];
    let receiver = PushReceiver::start(&[("dev", answers)]);
    let sender = sender(true);
    let t = target(&receiver.keys("dev"));
    let mut outcomes = Vec::new();
    for _ in 0..10 {
        let attempt = sender.send(&t, b"{}", &options()).await.expect("attempted");
        outcomes.push(attempt.outcome);
    }
    assert_eq!(
        outcomes,
        [
            Outcome::Gone,
            Outcome::Gone,
            Outcome::TooLarge,
            Outcome::RateLimited {
                wait: Some(Duration::from_secs(7))
            },
            Outcome::Temporary,
            Outcome::Unauthorized(403),
            Outcome::Redirected(301),
            Outcome::Redirected(307),
            Outcome::Rejected(400),
            Outcome::Temporary, // stalled past the 2 s timeout
        ]
    );
    // A followed redirect would have been requested before `send` returned (the
    // receiver logs a request before it answers), so nothing can still be on its way.
    assert_eq!(
        elsewhere.requests().len(),
        0,
        "a redirect was followed: {:#?}",
        elsewhere.requests()
    );
    // The stalled request is logged when the receiver answers it, after our timeout;
    // every other request was logged before its answer reached us.
    let seen = receiver.wait_for_requests(10, WAIT);
    assert_eq!(seen.len(), 10, "{seen:#?}");
    assert!(
        seen.iter().all(|r| r["endpoint"] == "dev"),
        "a redirect came back to this service: {seen:#?}"
    );
}

#[tokio::test]
async fn default_rules_refuse_loopback_and_http() {
    let receiver = PushReceiver::start(&[("dev", vec![])]);
    let result = sender(false)
        .send(&target(&receiver.keys("dev")), b"{}", &options())
        .await;
    assert!(
        matches!(result, Err(SendError::Refused(Refused::NotHttps))),
        "{result:?}"
    );
    let mut https = target(&receiver.keys("dev"));
    https.endpoint = url::Url::parse("https://127.0.0.1:9/push/dev").expect("url");
    let result = sender(false).send(&https, b"{}", &options()).await;
    assert!(
        matches!(result, Err(SendError::Refused(Refused::NotPublic(_)))),
        "{result:?}"
    );
    let https_name = url::Url::parse("https://localhost:9/push/dev").expect("url");
    let result = sender(false)
        .send(
            &Target {
                endpoint: https_name,
                ..target(&receiver.keys("dev"))
            },
            b"{}",
            &options(),
        )
        .await;
    assert!(
        matches!(result, Err(SendError::Refused(Refused::NotPublic(_)))),
        "a name resolving to loopback: {result:?}"
    );
    // Both sends returned: a request they made would have been logged before its
    // answer came back, so none can still be on its way.
    assert!(receiver.requests().is_empty(), "{:#?}", receiver.requests());
}
