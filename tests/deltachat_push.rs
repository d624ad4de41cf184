//! Delta Chat push end to end (issue 9): real Dovecot with coid's shipped METADATA
//! snippet (`XDELTAPUSH` advertised, METADATA through coid's dict proxy), real Postfix
//! delivering through coid, and coid notifying a stand-in for Delta Chat's
//! notification proxy on loopback (`common::notify_proxy`), which records every request
//! and answers what each test scripts.
//!
//! Covers what a Delta Chat client does over IMAP (the server-entry GETMETADATA, device
//! token registration as core sends it, refused tokens, NIL), one POST per token with
//! the token as the body, no POST for read receipts or one's own messages, the
//! proxy's answers (410 deletes, 5xx and 429 retry, other 4xx and redirects drop), a
//! restart or SIGKILL with notifications pending, mail flow during a stall, and the
//! metrics. A negative check never sleeps: it waits until coid's metrics show the
//! notification handled and its Delta Chat queue empty, after which coid sends nothing.

mod common;

use std::time::{Duration, Instant};

use common::dc_flow::{
    ADMIN, COMMENT, DELTACHAT_GETMETADATA, DEVICETOKEN, DcFlow, IROH_RELAY, NOTIFY_WAIT,
    SERVER_ENTRIES, TOKENS, device_token, expect_status, has_field, outcome, server_entry_reads,
    setmetadata_literal, setmetadata_quoted, snippet_example, sorted_bodies, sorted_ids,
    sorted_tokens, token_id, value_of,
};
use common::metadata::metadata;
use common::notify_proxy::{Answer, REDIRECT_PATH, Request};
use common::stack::DELIVERY_WAIT;
use common::{Imap, MessageBuilder};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const MAXSMTP: &str = "/shared/vendor/deltachat/maxsmtprecipients";

#[test]
fn capability_advertises_xdeltapush_with_the_shipped_snippet() {
    let flow = DcFlow::start("");
    let caps = flow.imap("alice").capabilities();
    for cap in ["XDELTAPUSH", "COI", "WEBPUSH", "METADATA"] {
        assert!(caps.iter().any(|c| c == cap), "{cap} missing in {caps:?}");
    }
}

#[test]
fn delta_chat_reads_the_server_entries_which_are_read_only() {
    let flow = DcFlow::start("");
    let mut imap = flow.imap("alice");
    // Dovecot answers these two itself, from the settings the snippet documents.
    let (admin, comment) = (snippet_example(ADMIN), snippet_example(COMMENT));
    let expected: [(&str, Option<&str>); 6] = [
        (SERVER_ENTRIES[0], Some(comment.as_str())),
        (SERVER_ENTRIES[1], Some(admin.as_str())),
        (SERVER_ENTRIES[2], Some(IROH_RELAY)),
        (SERVER_ENTRIES[3], None),
        (MAXSMTP, Some("1000")),
        (SERVER_ENTRIES[5], None),
    ];
    let check = |imap: &mut Imap| {
        let (status, text, entries) = metadata(imap, DELTACHAT_GETMETADATA);
        assert_eq!(status, "OK", "{DELTACHAT_GETMETADATA}: {text}");
        for (entry, want) in expected {
            // NIL or not listed at all: both mean "no value".
            let got = value_of(&entries, entry).cloned().flatten();
            assert_eq!(got.as_deref(), want, "{entry} in {entries:?}");
        }
    };
    check(&mut imap);
    // Delta Chat skips a round of fetching when this command fails; no error at all.
    flow.stack.dovecot.assert_no_log_errors();
    for entry in SERVER_ENTRIES {
        expect_status(
            &mut imap,
            &format!("SETMETADATA \"\" ({entry} \"mine\")"),
            "NO",
        );
        expect_status(&mut imap, &format!("SETMETADATA \"\" ({entry} NIL)"), "NO");
    }
    check(&mut imap);
    let log = flow.stack.coid.plain_log();
    let reads = server_entry_reads(&log, MAXSMTP);
    assert!(
        reads.iter().any(|l| has_field(l, "found", "true")),
        "no `server entry read` of {MAXSMTP} with found=true: {reads:?}"
    );
    // Dovecot logs coid's refusals of the SETMETADATAs, and nothing else.
    let errors = flow.stack.dovecot.log_errors();
    let other: Vec<&String> = errors
        .iter()
        .filter(|l| !l.contains("is read-only"))
        .collect();
    assert!(other.is_empty(), "{other:#?}");
}

#[test]
fn device_tokens_register_as_delta_chat_sends_them() {
    let flow = DcFlow::start("");
    let (phone, laptop) = (device_token(), device_token());
    let mut imap = flow.imap("alice");
    expect_status(&mut imap, &setmetadata_quoted(&phone), "OK");
    expect_status(&mut imap, &setmetadata_literal("INBOX", &laptop), "OK");
    expect_status(&mut imap, &setmetadata_quoted(&phone), "OK"); // a refresh
    let listed = flow.tokens(ALICE);
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(flow.token_ids(ALICE), sorted_ids(&[&phone, &laptop]));
    for token in [&phone, &laptop] {
        let entry = listed.iter().find(|t| t["id"] == token_id(token));
        let shown = entry.and_then(|t| t["token"].as_str()).expect("listed");
        let start: String = token.chars().take(16).collect();
        assert_eq!(shown, format!("{start}…"), "never the whole token");
        assert_eq!(entry.map(|t| t["pending"].clone()), Some(0.into()));
    }
    let (_, out, _) = flow.stack.coid.cli(&["push", "list", ALICE], None);
    assert!(!out.contains(&phone) && !out.contains(&laptop), "{out}");

    for mailbox in ["INBOX", "\"\""] {
        let command = format!("GETMETADATA {mailbox} ({DEVICETOKEN})");
        let (status, text, entries) = metadata(&mut imap, &command);
        assert_eq!(status, "OK", "{command}: {text}");
        assert!(entries.iter().all(|(_, v)| v.is_none()), "{entries:?}");
    }

    let too_long = format!("openpgp:{}", "A".repeat(4097 - 8));
    expect_status(&mut imap, &setmetadata_literal("INBOX", &too_long), "NO");
    expect_status(
        &mut imap,
        &setmetadata_literal("INBOX", "openpgp:ab\x1bcd"),
        "NO",
    );
    assert_eq!(flow.tokens(ALICE).len(), 2, "refused tokens are not stored");
    let longest = format!("openpgp:{}", "B".repeat(4096 - 8));
    expect_status(&mut imap, &setmetadata_literal("", &longest), "OK");
    let all = sorted_ids(&[&phone, &laptop, &longest]);
    assert_eq!(
        flow.token_ids(ALICE),
        all,
        "4096 bytes, on the server entry"
    );

    expect_status(
        &mut imap,
        &format!("SETMETADATA \"INBOX\" ({DEVICETOKEN} NIL)"),
        "OK",
    );
    assert_eq!(flow.tokens(ALICE), Vec::<serde_json::Value>::new());
}

#[test]
fn each_token_gets_one_post_whose_body_is_the_token() {
    let flow = DcFlow::start("");
    let tokens = [device_token(), device_token(), device_token()];
    let [a1, a2, b1] = &tokens;
    flow.register("alice", a1);
    flow.register("alice", a2);
    flow.register("bob", b1);
    flow.wait_settled(&[(TOKENS, 3.0)]);

    flow.mail(&[ALICE, BOB]);
    flow.wait_posts(3);
    flow.wait_settled(&[(&outcome("delivered"), 3.0)]);
    let posts = flow.proxy.posts();
    assert_eq!(
        sorted_bodies(&posts),
        sorted_tokens(&[a1, a2, b1]),
        "{posts:#?}"
    );

    flow.mail(&[ALICE]);
    flow.wait_posts(5);
    flow.wait_settled(&[(&outcome("delivered"), 5.0)]);
    let requests = flow.proxy.requests();
    assert_eq!(requests.len(), 5, "{requests:#?}");
    assert_eq!(sorted_bodies(&requests[3..]), sorted_tokens(&[a1, a2]));
    assert!(
        requests
            .iter()
            .all(|r| tokens.iter().any(|t| r.is_post_of(t)))
    );

    let log = flow.stack.coid.plain_log();
    for token in &tokens {
        assert!(!log.contains(token.as_str()), "a whole token in coid's log");
        let id = token_id(token);
        let named = log.lines().any(|l| has_field(l, "token", &id));
        assert!(named, "token={id} not in coid's log");
    }
    assert_eq!(log.matches("deltachat notification delivered").count(), 5);
}

#[test]
fn read_receipts_and_own_messages_do_not_notify() {
    let (flow, token) = DcFlow::with_token();
    let from_bob = |m: MessageBuilder| m.from("Bob <bob@example.net>");
    flow.deliver(
        "bob@example.net",
        &[ALICE],
        &from_bob(MessageBuilder::chat_read_receipt()),
    );
    flow.deliver(
        "bob@example.net",
        &[ALICE],
        &from_bob(MessageBuilder::read_receipt()),
    );
    let own = MessageBuilder::chat().from("Alice <Alice@Example.ORG>");
    flow.deliver(ALICE, &[ALICE], &own);
    // The barrier: a plain mail after them does notify.
    flow.mail(&[ALICE]);
    let posts = flow.wait_posts(1);
    flow.wait_settled(&[(&outcome("delivered"), 1.0)]);
    assert_eq!(
        flow.proxy.requests().len(),
        1,
        "only the plain mail: {posts:#?}"
    );
    assert!(posts[0].is_post_of(&token));
}

#[test]
fn a_gone_token_is_deleted() {
    let flow = DcFlow::start("");
    let (gone, kept) = (device_token(), device_token());
    flow.register("alice", &gone);
    flow.register("alice", &kept);
    flow.proxy.answer_body(&gone, Answer::Status(410));
    flow.mail(&[ALICE]);
    flow.wait_posts(2);
    flow.wait_settled(&[(&outcome("gone"), 1.0), (&outcome("delivered"), 1.0)]);
    assert_eq!(flow.token_ids(ALICE), [token_id(&kept)]);
    assert_eq!(flow.metric(TOKENS), Some(1.0));
    let log = flow.stack.coid.plain_log();
    let line = log
        .lines()
        .find(|l| l.contains("deltachat token gone at the notification service; deleted"));
    let line = line.unwrap_or_else(|| panic!("no `token gone` line:\n{log}"));
    assert!(has_field(line, "token", &token_id(&gone)), "{line}");

    flow.mail(&[ALICE]);
    flow.wait_posts(3);
    flow.wait_settled(&[(&outcome("gone"), 1.0), (&outcome("delivered"), 2.0)]);
    let posts = flow.proxy.posts();
    let count = |t: &str| posts.iter().filter(|p| p.is_post_of(t)).count();
    assert_eq!(
        (count(&gone), count(&kept), posts.len()),
        (1, 2, 3),
        "{posts:#?}"
    );
}

#[test]
fn a_server_error_is_retried_with_the_same_body() {
    let (flow, token) = DcFlow::with_token();
    flow.proxy.queue(&[Answer::Status(500)]);
    flow.mail(&[ALICE]);
    let posts = flow.wait_posts(2);
    flow.wait_settled(&[(&outcome("temporary"), 1.0), (&outcome("delivered"), 1.0)]);
    let answers: Vec<&Answer> = posts.iter().map(|p| &p.answer).collect();
    assert_eq!(answers, [&Answer::Status(500), &Answer::Status(200)]);
    assert!(posts.iter().all(|p| p.is_post_of(&token)), "{posts:#?}");
    let waited = posts[1].since(&posts[0]);
    assert!(waited >= 0.9, "backoff_first_secs = 1, waited {waited} s");
    assert_eq!(flow.proxy.requests().len(), 2);
    let log = flow.stack.coid.plain_log();
    assert!(
        log.contains("deltachat notification failed; will retry"),
        "{log}"
    );
}

#[test]
fn rate_limits_wait_for_retry_after_or_the_configured_time() {
    let (flow, token) = DcFlow::with_token();
    flow.proxy
        .queue(&[Answer::TooMany(Some(2)), Answer::TooMany(None)]);
    flow.mail(&[ALICE]);
    let posts = flow.wait_posts(3);
    flow.wait_settled(&[
        (&outcome("rate_limited"), 2.0),
        (&outcome("delivered"), 1.0),
    ]);
    assert!(posts.iter().all(|p| p.is_post_of(&token)), "{posts:#?}");
    let (first, second) = (posts[1].since(&posts[0]), posts[2].since(&posts[1]));
    assert!(first >= 1.9, "Retry-After: 2, waited {first} s");
    assert!(second >= 0.9, "rate_limit_secs = 1, waited {second} s");
    assert_eq!(flow.proxy.requests().len(), 3);
}

#[test]
fn other_client_errors_drop_the_notification_and_keep_the_token() {
    let (flow, token) = DcFlow::with_token();
    flow.proxy.queue(&[Answer::Status(404)]);
    flow.mail(&[ALICE]);
    flow.wait_posts(1);
    flow.wait_settled(&[(&outcome("rejected"), 1.0), (&outcome("delivered"), 0.0)]);
    let listed = flow.tokens(ALICE);
    assert_eq!(listed.len(), 1, "404 is not 410: {listed:#?}");
    assert_eq!(listed[0]["id"], token_id(&token));
    assert_eq!(listed[0]["pending"], 0, "dropped, not retried");
    assert_eq!(flow.proxy.requests().len(), 1);
}

#[test]
fn a_redirect_is_never_followed() {
    let (flow, token) = DcFlow::with_token();
    flow.proxy.set_default(Answer::Redirect);
    flow.mail(&[ALICE]);
    flow.wait_posts(1);
    flow.wait_settled(&[(&outcome("redirected"), 1.0), (&outcome("delivered"), 0.0)]);
    let requests = flow.proxy.requests();
    assert!(
        requests.iter().all(|r| r.path != REDIRECT_PATH),
        "{requests:#?}"
    );
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(
        flow.token_ids(ALICE),
        [token_id(&token)],
        "a redirect keeps the token"
    );
}

/// How coid goes down with a notification pending.
#[derive(Clone, Copy, Debug)]
enum Down {
    Term,
    Kill,
}

/// The stand-in answers `first` (stall or 500) until coid is down; then 200, and
/// the restarted coid on the same state delivers the notification.
fn pending_notification_survives(first: Answer, down: Down) {
    let (mut flow, token) = DcFlow::with_token();
    flow.proxy.set_default(first);
    flow.mail(&[ALICE]);
    flow.wait_posts(1);
    let coid = &mut flow.stack.coid;
    match down {
        Down::Term => coid.stop(),
        Down::Kill => {
            coid.signal("KILL");
            let exit = coid.wait_exit(Duration::from_secs(10));
            assert!(exit.is_some(), "coid still runs after SIGKILL");
        }
    }
    flow.proxy.set_default(Answer::Status(200));
    flow.proxy.release_stalled();
    let restarted = Instant::now();
    flow.stack.coid.restart();
    flow.proxy
        .wait_for("the POST of the restarted coid", NOTIFY_WAIT, |r| {
            r.iter().any(|p| p.at > restarted && p.is_post_of(&token))
        });
    flow.wait_settled(&[(&outcome("delivered"), 1.0)]);
    let after: Vec<Request> = flow
        .proxy
        .posts()
        .into_iter()
        .filter(|p| p.at > restarted)
        .collect();
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0].answer, Answer::Status(200));
}

#[test]
fn a_stalled_notification_survives_a_restart() {
    pending_notification_survives(Answer::Stall, Down::Term);
}

#[test]
fn a_stalled_notification_survives_sigkill() {
    pending_notification_survives(Answer::Stall, Down::Kill);
}

#[test]
fn a_failing_notification_survives_sigkill() {
    pending_notification_survives(Answer::Status(500), Down::Kill);
}

#[test]
fn mail_flows_while_the_notification_service_stalls() {
    let (flow, token) = DcFlow::with_token();
    flow.proxy.set_default(Answer::Stall);
    flow.mail(&[ALICE]);
    let stalled = flow.wait_posts(1);
    assert!(stalled[0].is_post_of(&token) && stalled[0].answer == Answer::Stall);

    let started = Instant::now();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            let message = MessageBuilder::new().subject(&format!("during the stall {i}"));
            flow.stack.send("bob@example.net", &[ALICE], &message)
        })
        .collect();
    for id in &ids {
        flow.stack
            .dovecot
            .wait_for_message("alice", id, DELIVERY_WAIT);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "5 messages took {took:?}");
    let queue = flow.stack.postfix.wait_for_empty_queue(DELIVERY_WAIT);
    queue.expect("Postfix delivered everything");
    let sent = flow.stack.postfix.log().matches("status=sent (250").count();
    assert_eq!(sent, 6, "{}", flow.stack.postfix.log());
    let still = flow.proxy.requests();
    assert!(
        still.iter().all(|r| r.answer == Answer::Stall),
        "{still:#?}"
    );
}

/// `coid push test` sends one notification to each token now and prints each answer;
/// a token the service calls gone is deleted; `coid push delete` removes one by id.
#[test]
fn the_admin_cli_tests_and_deletes_tokens() {
    let (flow, first) = DcFlow::with_token();
    let second = device_token();
    flow.register("alice", &second);
    let coid = &flow.stack.coid;
    let (code, out, err) = coid.cli(&["push", "test", ALICE], None);
    assert_eq!(code, 0, "{out}{err}");
    for token in [&first, &second] {
        let line = format!("{}: delivered (HTTP 200)", token_id(token));
        assert!(out.lines().any(|l| l == line), "{line:?} in {out}");
    }
    let posts = flow.wait_posts(2);
    assert_eq!(sorted_bodies(&posts), sorted_tokens(&[&first, &second]));
    assert!(
        !out.contains(&first) && !out.contains(&second),
        "a whole token: {out}"
    );

    flow.proxy.answer_body(&second, Answer::Status(410));
    let (code, out, err) = coid.cli(&["push", "test", ALICE], None);
    assert_eq!(code, 65, "a gone token is not delivered: {out}{err}");
    let gone = format!(
        "{}: deleted (gone at the notification service)",
        token_id(&second)
    );
    assert!(out.lines().any(|l| l == gone), "{gone:?} in {out}");
    assert_eq!(flow.token_ids(ALICE), [token_id(&first)]);

    let id = token_id(&first);
    let (code, out, err) = coid.cli(&["push", "delete", ALICE, &id], None);
    assert_eq!(
        (code, out.trim()),
        (0, format!("deleted {id}").as_str()),
        "{err}"
    );
    assert!(flow.token_ids(ALICE).is_empty());
    let (code, _, err) = coid.cli(&["push", "test", ALICE], None);
    assert_eq!(code, 67, "no target left: {err}");
}
