//! Web Push end to end: a COI client's whole flow over IMAP against real Dovecot (COI
//! and WEBPUSH advertised by the shipped snippet, METADATA through coid's dict proxy),
//! real Postfix delivering through coid, and a real push service on loopback that
//! decrypts with another implementation (`tests/push/receiver.py`). Then the push
//! service's answers (404/410, 413, 429, 500, a stall) and a coid restart with pushes
//! pending.

mod common;

use std::time::{Duration, Instant};

use common::metadata::{COI_CONFIG, get, metadata, set};
use common::metrics::wait_samples;
use common::push_flow::{Flow, VAPID, WEBPUSH, bare, subscription};
use common::push_receiver::Answer;
use common::{Imap, MessageBuilder, wait_until};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;

/// alice subscribed to every endpoint for chats and validated (the receiver answers
/// each endpoint's validation push 201, then `answers`), with `push_toml` for coid.
fn subscribed(endpoints: &[(&str, &[Answer])], push_toml: &str) -> (Flow, Imap) {
    let scripts: Vec<(&str, Vec<Answer>)> = endpoints
        .iter()
        .map(|&(name, answers)| (name, [&[Answer::Status(201)][..], answers].concat()))
        .collect();
    let flow = Flow::start(&scripts, push_toml);
    let mut imap = flow.alice();
    for (name, _) in endpoints {
        flow.subscribe_validated(&mut imap, &format!("{name}-subscription"), name, "chat");
    }
    (flow, imap)
}

/// The receiver's `received` times, in seconds.
fn received(push: &serde_json::Value) -> f64 {
    push["_received"].as_f64().expect("received time")
}

#[test]
fn a_coi_client_subscribes_validates_and_gets_chat_pushes() {
    let flow = Flow::start(&[("phone", vec![]), ("mailer", vec![])], "");
    let mut imap = flow.stack.dovecot.imap("alice");
    let caps = imap.capabilities();
    for cap in ["COI", "WEBPUSH", "METADATA"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing in {caps:?}");
    }
    let mut imap = flow.alice();

    // What the OX client reads after login: the COI config and the VAPID key.
    let command = format!("GETMETADATA (DEPTH 1) \"\" ({COI_CONFIG} {WEBPUSH})");
    let (status, text, entries) = metadata(&mut imap, &command);
    assert_eq!(status, "OK", "{text}");
    let pem = entries
        .iter()
        .find(|(name, _)| name == VAPID)
        .and_then(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no VAPID key in {entries:?}"));
    let vapid = p256::PublicKey::from_public_key_pem(&pem).expect("a P-256 PEM public key");
    let (status, _) = set(&mut imap, "", &[(VAPID, Some("mine"))]);
    assert_eq!(status, "NO", "the VAPID key is read-only");
    // Delta Chat / chatmail register a device token: taken, and never read back.
    let token = "openpgp:fcm:device-token-123";
    let (status, text) = set(&mut imap, "", &[("/private/devicetoken", Some(token))]);
    assert_eq!(status, "OK", "{text}");
    assert_eq!(
        get(&mut imap, "", &["/private/devicetoken"]),
        [("/private/devicetoken".to_owned(), None)]
    );

    // Subscribe: the validation push arrives, encrypted and signed with that key.
    let (status, text) = flow.subscribe(
        &mut imap,
        "31754ee7-d3ee-4226-b112-6895ed26fcf8",
        "phone",
        "chat",
    );
    assert_eq!(status, "OK", "{text}");
    let token = flow.validation_token("phone");
    let validation = flow.receiver.requests()[0].clone();
    assert_eq!(
        validation["validation"], "",
        "WebPush-Validation header: {validation:#}"
    );
    assert_eq!(
        validation["vapid"]["k"].as_str().map(p256_point),
        Some(vapid.to_encoded_point(false).as_bytes().to_vec()),
        "the JWT is signed with the key served as webpush/vapid"
    );
    let listing = flow
        .listing(&mut imap, "31754ee7-d3ee-4226-b112-6895ed26fcf8")
        .expect("listed");
    assert_eq!(listing["validated"], false);
    let validate = format!(
        "{}/validate",
        subscription("31754ee7-d3ee-4226-b112-6895ed26fcf8")
    );
    let (status, _) = set(&mut imap, "", &[(&validate, Some("not the token"))]);
    assert_eq!(status, "NO");
    let (status, text) = set(&mut imap, "", &[(&validate, Some(&token))]);
    assert_eq!(status, "OK", "{text}");
    let listed = flow.list(&mut imap);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (name, listing) = &listed[0];
    assert_eq!(name, &subscription("31754ee7-d3ee-4226-b112-6895ed26fcf8"));
    assert_eq!(listing["validated"], true);
    assert_eq!(listing["msgtype"], "chat");
    assert_eq!(listing["client"], "coid tests");
    assert!(
        listing["created"]
            .as_str()
            .is_some_and(|c| c.ends_with("+00:00")),
        "{listing}"
    );
    // A second subscription, for plain mail, in Dovecot's vocabulary.
    flow.subscribe_validated(&mut imap, "mailer-subscription", "mailer", "email");

    // A chat pushes to "phone" only, with the spec's fields.
    let started = Instant::now();
    let chat = flow.send_chat("Hi Alice!\r\n");
    let pushes = flow.wait_message_pushes("phone", 1);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let push = &pushes[0];
    assert_eq!(push["folder"], "COI/Chats", "{push:#}");
    assert_eq!(push["from-email"], "bob@example.net");
    assert_eq!(push["from-name"], "Bob");
    assert_eq!(push["subject"], "push me");
    assert_eq!(push["msg-id"], bare(&chat));
    assert_eq!(push["content"], "Hi Alice!\r\n");

    // Plain mail pushes to "mailer" only; a read receipt pushes nowhere.
    let mail = flow.send(&MessageBuilder::new().subject("plain"), "INBOX");
    let mailer = flow.wait_message_pushes("mailer", 1);
    assert_eq!(
        (mailer[0]["msg-id"].as_str(), mailer[0]["folder"].as_str()),
        (Some(bare(&mail)), Some("INBOX"))
    );
    let mdn_id = flow.send(&MessageBuilder::chat_read_receipt(), "COI/Chats");
    let second = flow.send_chat("again\r\n");
    let pushes = flow.wait_message_pushes("phone", 2);
    let ids: Vec<&str> = pushes.iter().filter_map(|p| p["msg-id"].as_str()).collect();
    assert_eq!(
        ids,
        [bare(&chat), bare(&second)],
        "no push for the plain mail or the MDN ({mdn_id})"
    );
    assert_eq!(flow.message_pushes("mailer").len(), 1);

    // NIL unsubscribes: the next chat pushes nowhere.
    let (status, text) = set(
        &mut imap,
        "",
        &[(&subscription("31754ee7-d3ee-4226-b112-6895ed26fcf8"), None)],
    );
    assert_eq!(status, "OK", "{text}");
    assert_eq!(
        flow.list(&mut imap).len(),
        1,
        "only the mailer subscription is left"
    );
    let before = flow.receiver.requests().len();
    let mailer_before = flow.message_pushes("mailer").len();
    flow.send_chat("nobody listens\r\n");
    // A barrier instead of a pause: a plain mail after the chat does push to
    // "mailer"; once that push is in, the chat's would have been too.
    flow.send(&MessageBuilder::new().subject("after the chat"), "INBOX");
    flow.wait_message_pushes("mailer", mailer_before + 1);
    assert_eq!(
        flow.receiver.requests().len(),
        before + 1,
        "only the plain mail's push: {:#?}",
        flow.receiver.requests()
    );
}

/// The SEC1 point in a VAPID `k=` (base64url).
fn p256_point(k: &str) -> Vec<u8> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::decode_vec(k).expect("base64url k")
}

#[test]
fn gone_subscriptions_are_deleted() {
    let flow = Flow::start(
        &[
            ("g404", vec![Answer::Status(201), Answer::Status(404)]),
            ("g410", vec![Answer::Status(201), Answer::Status(410)]),
        ],
        "",
    );
    let mut imap = flow.alice();
    flow.subscribe_validated(&mut imap, "sub-404-xx", "g404", "chat");
    flow.subscribe_validated(&mut imap, "sub-410-xx", "g410", "all");
    assert_eq!(flow.list(&mut imap).len(), 2);
    flow.send_chat("hi\r\n");
    flow.wait_message_pushes("g404", 1);
    flow.wait_message_pushes("g410", 1);
    let gone = wait_until(Duration::from_secs(10), || {
        flow.list(&mut imap).is_empty().then_some(())
    });
    assert!(gone.is_some(), "still listed: {:?}", flow.list(&mut imap));
}

#[test]
fn too_large_is_sent_once_more_without_content() {
    let (flow, _imap) = subscribed(
        &[("small", &[Answer::Status(413), Answer::Status(413)])],
        "",
    );
    flow.send_chat("a body that is too large for this push service\r\n");
    let pushes = flow.wait_message_pushes("small", 2);
    assert!(pushes[0]["content"].is_string(), "{:#}", pushes[0]);
    assert_eq!(
        pushes[1]["content"],
        serde_json::Value::Null,
        "{:#}",
        pushes[1]
    );
    assert_eq!(pushes[1]["msg-id"], pushes[0]["msg-id"]);
    // The second 413 drops it: no third try. Once coid counted both 413s and its
    // Web Push queue is empty, it has nothing left that could send one.
    let metrics = flow.stack.coid.metrics_addr();
    let settled = [
        (r#"coid_push_outcomes_total{outcome="too_large"}"#, 2.0),
        (r#"coid_push_queue_depth{kind="webpush"}"#, 0.0),
    ];
    wait_samples(metrics, &settled, Duration::from_secs(15));
    assert_eq!(flow.message_pushes("small").len(), 2);
}

#[test]
fn rate_limits_and_server_errors_are_retried_later() {
    let (flow, _imap) = subscribed(
        &[
            ("limited", &[Answer::RetryAfter("3")]),
            ("flaky", &[Answer::Status(500)]),
        ],
        "",
    );
    flow.send_chat("hello\r\n");
    let limited = flow.wait_message_pushes("limited", 2);
    assert_eq!(
        (
            limited[0]["_status"].as_u64(),
            limited[1]["_status"].as_u64()
        ),
        (Some(429), Some(201))
    );
    let waited = received(&limited[1]) - received(&limited[0]);
    assert!(waited >= 2.9, "Retry-After: 3 honoured: waited {waited} s");
    let flaky = flow.wait_message_pushes("flaky", 2);
    assert_eq!(
        (flaky[0]["_status"].as_u64(), flaky[1]["_status"].as_u64()),
        (Some(500), Some(201))
    );
    let waited = received(&flaky[1]) - received(&flaky[0]);
    assert!(waited >= 1.9, "backoff after a 500: {waited} s");
    assert_eq!(flaky[1]["msg-id"], flaky[0]["msg-id"]);
}

#[test]
fn a_stalled_push_service_is_retried() {
    let (flow, _imap) = subscribed(&[("stall", &[Answer::Stall(4)])], "timeout_secs = 1");
    flow.send_chat("hello\r\n");
    // The retry is answered 201; the stalled request is logged when it finally ends.
    let pushes = flow.wait_message_pushes("stall", 2);
    assert!(pushes.iter().all(|p| p["_status"] == 201), "{pushes:#?}");
    let log = flow.stack.coid.log();
    assert!(log.contains("push failed; will retry"), "{log}");
    assert!(log.contains("push delivered"), "{log}");
}

#[test]
fn pending_pushes_survive_a_restart() {
    let (mut flow, _imap) = subscribed(
        &[("later", &[Answer::Status(500), Answer::Status(500)])],
        "",
    );
    let chat = flow.send_chat("hello\r\n");
    flow.wait_message_pushes("later", 1);
    flow.stack.coid.stop();
    let stopped = flow.message_pushes("later").len();
    assert!(stopped <= 2, "{stopped}");
    let restarted_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    flow.stack.coid.restart();
    let pushes = flow.wait_message_pushes("later", 3);
    // Over the whole time coid was down (no fixed wait: every push the receiver logs
    // carries the time it came), nothing was sent.
    let while_down = pushes
        .iter()
        .filter(|p| received(p) <= restarted_at)
        .count();
    assert_eq!(while_down, stopped, "sent while coid was down: {pushes:#?}");
    let last = &pushes[2];
    assert_eq!(
        (last["_status"].as_u64(), last["msg-id"].as_str()),
        (Some(201), Some(bare(&chat)))
    );
    assert!(received(last) > restarted_at, "sent by the restarted coid");
}

/// One chat to a user with ten devices: the worker claims its ten pushes in one trip,
/// and the sends with at least eight claimed rows behind them (the first two) hand
/// their encryption to the sealing thread (`[push] worker_threads` = 2, the default);
/// with 1 none does. Either way every push decrypts elsewhere to the chat.
#[test]
fn a_backlog_is_encrypted_beside_the_worker_and_decrypts_elsewhere() {
    for (push_toml, beside) in [("", 2.0), ("worker_threads = 1", 0.0)] {
        let names: Vec<String> = (0..10).map(|i| format!("device{i}")).collect();
        let endpoints: Vec<(&str, &[Answer])> =
            names.iter().map(|name| (name.as_str(), &[][..])).collect();
        let (flow, _imap) = subscribed(&endpoints, push_toml);
        let chat = flow.send_chat("to every device\r\n");
        for name in &names {
            let pushes = flow.wait_message_pushes(name, 1);
            assert_eq!(
                (pushes[0]["_status"].as_u64(), pushes[0]["msg-id"].as_str()),
                (Some(201), Some(bare(&chat))),
                "{push_toml:?}: {name}"
            );
        }
        let metrics = flow.stack.coid.metrics_addr();
        let counted = [
            ("coid_push_encrypted_beside_total", beside),
            (r#"coid_push_outcomes_total{outcome="delivered"}"#, 20.0),
        ];
        wait_samples(metrics, &counted, Duration::from_secs(15));
    }
}
