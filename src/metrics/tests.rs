//! Unit tests of the registry: names, HELP/TYPE/UNIT lines, labels and values in the
//! encoded exposition. Each test builds its own [`Metrics`] or [`Recorder`], so values
//! are exact; one test checks that a recorder and its clones count into one registry
//! and that an off recorder counts nothing.

use super::Recorder;
use super::labels::{BackendError, DeliveryOutcome, DictCommit, MessageClass, Proto, PushOutcome};
use super::registry::Metrics;
use crate::delivery::lmtp_client::ClientError;
use crate::push::outcome::Outcome;
use crate::store::{NewPush, temp_store};

/// The value of the sample `series` (name and labels, exactly as encoded).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

fn encoded(m: &Metrics) -> String {
    m.encode().expect("encodes")
}

#[track_caller]
fn assert_value(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in\n{text}");
}

#[test]
fn a_fresh_registry_lists_every_family_at_zero() {
    let text = encoded(&Metrics::new());
    for line in [
        "# HELP coid_messages Messages processed (one per LMTP DATA) by class.",
        "# TYPE coid_messages counter",
        "# TYPE coid_sessions_active gauge",
        "# TYPE coid_sessions counter",
        "# TYPE coid_deliveries counter",
        "# TYPE coid_delivery_duration_seconds histogram",
        "# UNIT coid_delivery_duration_seconds seconds",
        "# TYPE coid_backend_errors counter",
        "# TYPE coid_policy_errors counter",
        "# TYPE coid_push_outcomes counter",
        "# TYPE coid_push_encrypted_beside counter",
        "# TYPE coid_dict_commits counter",
        "# TYPE coid_reloads counter",
        "# TYPE coid_build_info gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing in\n{text}"
        );
    }
    assert_value(&text, r#"coid_messages_total{class="chat"}"#, 0.0);
    assert_value(
        &text,
        r#"coid_deliveries_total{class="unknown",outcome="rejected"}"#,
        0.0,
    );
    assert_value(&text, r#"coid_sessions_active{proto="dict"}"#, 0.0);
    assert_value(
        &text,
        r#"coid_push_outcomes_total{outcome="queue_full"}"#,
        0.0,
    );
    assert_value(&text, "coid_policy_errors_total", 0.0);
    assert_value(&text, "coid_push_encrypted_beside_total", 0.0);
    let build = format!(
        r#"coid_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_value(&text, &build, 1.0);
    assert!(
        !text.contains("coid_push_queue_depth"),
        "no queue watched yet"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn messages_and_deliveries_by_class_and_outcome() {
    let m = Metrics::new();
    use DeliveryOutcome::{Deferred, Delivered, Rejected};
    m.message_done(
        MessageClass::Chat,
        [Delivered, Deferred, Rejected, Delivered],
    );
    m.message_done(MessageClass::Email, [Deferred]);
    m.message_done(MessageClass::Unknown, [Deferred, Deferred]);
    let text = encoded(&m);
    assert_value(&text, r#"coid_messages_total{class="chat"}"#, 1.0);
    assert_value(&text, r#"coid_messages_total{class="email"}"#, 1.0);
    assert_value(&text, r#"coid_messages_total{class="unknown"}"#, 1.0);
    assert_value(&text, r#"coid_messages_total{class="group"}"#, 0.0);
    let d = |class: &str, outcome: &str| {
        format!(r#"coid_deliveries_total{{class="{class}",outcome="{outcome}"}}"#)
    };
    assert_value(&text, &d("chat", "delivered"), 2.0);
    assert_value(&text, &d("chat", "deferred"), 1.0);
    assert_value(&text, &d("chat", "rejected"), 1.0);
    assert_value(&text, &d("email", "deferred"), 1.0);
    assert_value(&text, &d("email", "delivered"), 0.0);
    assert_value(&text, &d("unknown", "deferred"), 2.0);
}

#[test]
fn a_session_counts_as_open_until_its_guard_drops() {
    let m = Metrics::new();
    let first = m.session_started(Proto::Lmtp);
    let second = m.session_started(Proto::Lmtp);
    let text = encoded(&m);
    assert_value(&text, r#"coid_sessions_active{proto="lmtp"}"#, 2.0);
    assert_value(&text, r#"coid_sessions_total{proto="lmtp"}"#, 2.0);
    drop(first);
    let text = encoded(&m);
    assert_value(&text, r#"coid_sessions_active{proto="lmtp"}"#, 1.0);
    assert_value(&text, r#"coid_sessions_total{proto="lmtp"}"#, 2.0);
    assert_value(&text, r#"coid_sessions_total{proto="dict"}"#, 0.0);
    drop(second);
    assert_value(&encoded(&m), r#"coid_sessions_active{proto="lmtp"}"#, 0.0);
}

#[test]
fn delivery_durations_fall_into_buckets() {
    let m = Metrics::new();
    m.delivery_took(std::time::Duration::from_millis(3));
    m.delivery_took(std::time::Duration::from_secs(200));
    let text = encoded(&m);
    assert_value(&text, "coid_delivery_duration_seconds_count", 2.0);
    let bucket = |le: &str| format!(r#"coid_delivery_duration_seconds_bucket{{le="{le}"}}"#);
    assert_value(&text, &bucket("0.0025"), 0.0);
    assert_value(&text, &bucket("0.005"), 1.0);
    assert_value(&text, &bucket("120.0"), 1.0);
    assert_value(&text, &bucket("+Inf"), 2.0);
}

#[test]
fn errors_outcomes_commits_and_reloads() {
    let m = Metrics::new();
    m.backend_error(BackendError::from(&ClientError::Timeout));
    m.backend_error(BackendError::from(&ClientError::Protocol("x".into())));
    m.backend_error(BackendError::Locked);
    m.policy_error();
    m.push_outcomes(Outcome::RateLimited { wait: None }.into(), 1);
    m.push_outcomes(Outcome::Rejected(400).into(), 1);
    m.push_outcomes(PushOutcome::Expired, 3);
    m.push_outcomes(PushOutcome::QueueFull, 0);
    m.push_sealed_beside();
    m.push_sealed_beside();
    m.dict_commit(DictCommit::Refused);
    m.reload(true);
    m.reload(false);
    m.reload(false);
    let text = encoded(&m);
    assert_value(&text, r#"coid_backend_errors_total{kind="timeout"}"#, 1.0);
    assert_value(&text, r#"coid_backend_errors_total{kind="protocol"}"#, 1.0);
    assert_value(&text, r#"coid_backend_errors_total{kind="locked"}"#, 1.0);
    assert_value(&text, r#"coid_backend_errors_total{kind="connect"}"#, 0.0);
    assert_value(&text, "coid_policy_errors_total", 1.0);
    assert_value(&text, "coid_push_encrypted_beside_total", 2.0);
    assert_value(
        &text,
        r#"coid_push_outcomes_total{outcome="rate_limited"}"#,
        1.0,
    );
    assert_value(
        &text,
        r#"coid_push_outcomes_total{outcome="rejected"}"#,
        1.0,
    );
    assert_value(&text, r#"coid_push_outcomes_total{outcome="expired"}"#, 3.0);
    assert_value(
        &text,
        r#"coid_push_outcomes_total{outcome="queue_full"}"#,
        0.0,
    );
    assert_value(&text, r#"coid_dict_commits_total{result="refused"}"#, 1.0);
    assert_value(&text, r#"coid_dict_commits_total{result="ok"}"#, 0.0);
    assert_value(&text, r#"coid_reloads_total{result="ok"}"#, 1.0);
    assert_value(&text, r#"coid_reloads_total{result="failed"}"#, 2.0);
}

#[test]
fn the_queue_depth_is_counted_in_the_store_at_scrape_time() {
    let (_dir, store) = temp_store();
    let m = Metrics::new();
    m.watch_push_queue(store.clone());
    assert_value(
        &encoded(&m),
        r#"coid_push_queue_depth{kind="webpush"}"#,
        0.0,
    );
    let push = NewPush {
        username: "alice@example.org".into(),
        kind: crate::store::PushKind::WebPush,
        target: "s1".into(),
        payload: "{}".into(),
        with_content: false,
        validation: false,
        not_before: 0,
        deadline: i64::MAX,
        dedupe: None,
    };
    let stored = store
        .enqueue(&[push.clone(), push], 10, 0)
        .expect("enqueue");
    assert_eq!(stored, 2);
    let text = encoded(&m);
    assert!(
        text.contains("# TYPE coid_push_queue_depth gauge"),
        "{text}"
    );
    assert_value(&text, r#"coid_push_queue_depth{kind="webpush"}"#, 2.0);
    assert_value(&text, r#"coid_push_queue_depth{kind="deltachat"}"#, 0.0);
    assert_value(&text, "coid_deltachat_tokens", 0.0);
}

/// Store calls that fail are counted by engine; a refused commit is no failure.
#[test]
fn store_errors_are_counted_by_engine() {
    let (dir, store) = temp_store();
    let m = Metrics::new();
    m.watch_push_queue(store.clone());
    let errors = r#"coid_state_store_errors_total{engine="sqlite"}"#;
    assert_value(&encoded(&m), errors, 0.0);
    let refused = crate::store::Op::Validate {
        id: "none".into(),
        token: "t".into(),
        created_since: 0,
    };
    assert!(store.commit("a@x", &[refused], 0).is_err());
    assert_eq!(store.errors(), 0, "a refusal is no failure");
    rusqlite::Connection::open(dir.path().join("s.sqlite"))
        .expect("raw")
        .execute_batch("DROP TABLE push_queue_size")
        .expect("break the store");
    assert!(store.queue_len().is_err());
    assert!(store.clone().queue_len().is_err(), "clones count together");
    let text = encoded(&m);
    assert!(
        text.contains("# TYPE coid_state_store_errors counter"),
        "{text}"
    );
    assert_value(&text, errors, 2.0);
}

#[test]
fn label_values_are_fixed_snake_case_and_distinct() {
    let groups: [Vec<&str>; 5] = [
        Proto::ALL.iter().map(|v| v.as_str()).collect(),
        MessageClass::ALL.iter().map(|v| v.as_str()).collect(),
        BackendError::ALL.iter().map(|v| v.as_str()).collect(),
        PushOutcome::ALL.iter().map(|v| v.as_str()).collect(),
        DictCommit::ALL.iter().map(|v| v.as_str()).collect(),
    ];
    for values in groups {
        let mut unique = values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), values.len(), "{values:?}");
        for v in values {
            assert!(
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{v:?}"
            );
        }
    }
}

#[test]
fn a_recorder_and_its_clones_count_into_one_registry_and_off_counts_nothing() {
    let recorder = Recorder::new();
    let series = r#"coid_messages_total{class="mdn"}"#;
    assert_value(&recorder.encode().expect("encodes"), series, 0.0);
    let clone = recorder.clone();
    clone.message_done(MessageClass::Mdn, [DeliveryOutcome::Delivered]);
    let guard = recorder.session_started(Proto::Dict);
    let text = recorder.encode().expect("encodes");
    assert_value(&text, series, 1.0);
    assert_value(&text, r#"coid_sessions_active{proto="dict"}"#, 1.0);
    drop(guard);
    let text = recorder.encode().expect("encodes");
    assert_value(&text, r#"coid_sessions_active{proto="dict"}"#, 0.0);
    assert_value(&text, r#"coid_sessions_total{proto="dict"}"#, 1.0);
    // Another recorder is another registry.
    assert_value(&Recorder::new().encode().expect("encodes"), series, 0.0);
    let off = Recorder::off();
    off.message_done(MessageClass::Mdn, [DeliveryOutcome::Delivered]);
    drop(off.session_started(Proto::Lmtp));
    assert_eq!(off.encode().expect("encodes"), "");
}
