//! Which subscriptions a delivered message pushes to, and what the payload says.

use super::*;
use crate::store::{NewPush, Op, Subscribe, Subscription};

const ALICE: &str = "alice@example.org";
const HEADER: &[u8] = b"From: Bob <bob@example.net>\r\nSubject: Hi\r\n\
    Message-ID: <chat$group.g1.x@example.net>\r\nChat-Version: 1.0\r\n\r\n";

fn store() -> (tempfile::TempDir, Store) {
    let (dir, store) = crate::push::temp_store();
    for (id, msgtype, validate) in [
        ("chat", "chat", true),
        ("mail", "email", true),
        ("all", "any", true),
        ("pending", "all", false),
    ] {
        let sub = Subscription {
            id: id.into(),
            client: "c".into(),
            device: "d".into(),
            msgtype: msgtype.into(),
            endpoint: format!("https://push.example/{id}"),
            p256dh: "k".into(),
            auth: "a".into(),
            created: 1,
            validated_at: None,
        };
        let push = NewPush {
            username: ALICE.into(),
            kind: crate::store::PushKind::WebPush,
            target: id.into(),
            payload: "{}".into(),
            with_content: false,
            validation: true,
            not_before: 0,
            deadline: 0,
            dedupe: None,
        };
        let mut ops = vec![Op::Subscribe(Box::new(Subscribe {
            subscription: sub,
            token: "t".into(),
            limit: 10,
            validation_push: push,
            max_queue: 100,
        }))];
        if validate {
            ops.push(Op::Validate {
                id: id.into(),
                token: "t".into(),
                created_since: 0,
            });
        }
        store.commit(ALICE, &ops, 1000).expect("subscribe");
    }
    (dir, store)
}

fn message(body: Option<&[u8]>) -> DeliveredMessage {
    DeliveredMessage {
        header: HEADER.to_vec(),
        body: body.map(<[u8]>::to_vec),
        group_id: Some("g1".into()),
        class: Class::Chat,
        began: Instant::now(),
    }
}

fn delivered(chat: bool) -> Vec<Delivered> {
    vec![Delivered {
        username: ALICE.into(),
        address: ALICE.into(),
        folder: "COI.Chats".into(),
        chat,
    }]
}

fn ids(pushes: &[NewPush]) -> Vec<&str> {
    pushes.iter().map(|p| p.target.as_str()).collect()
}

#[test]
fn msgtype_decides_and_pending_subscriptions_get_nothing() {
    let (_dir, store) = store();
    let chat = pushes_for(&store, &message(None), &delivered(true), 5, 9).expect("pushes");
    assert_eq!(ids(&chat), ["all", "chat"]);
    let mail = pushes_for(&store, &message(None), &delivered(false), 5, 9).expect("pushes");
    assert_eq!(ids(&mail), ["all", "mail"]);
    assert!(
        chat.iter()
            .all(|p| !p.validation && p.not_before == 5 && p.deadline == 9)
    );
    let nobody = vec![Delivered {
        username: "bob@example.org".into(),
        ..delivered(true)[0].clone()
    }];
    assert!(
        pushes_for(&store, &message(None), &nobody, 5, 9)
            .expect("none")
            .is_empty()
    );
}

#[test]
fn the_payload_names_folder_sender_subject_group_and_small_content() {
    let (_dir, store) = store();
    let pushes =
        pushes_for(&store, &message(Some(b"hello\r\n")), &delivered(true), 0, 0).expect("pushes");
    let push = pushes.first().expect("one");
    assert!(push.with_content);
    let json: serde_json::Value = serde_json::from_str(&push.payload).expect("json");
    assert_eq!(json["folder"], "COI.Chats");
    assert_eq!(json["from-email"], "bob@example.net");
    assert_eq!(json["from-name"], "Bob");
    assert_eq!(json["subject"], "Hi");
    assert_eq!(json["msg-id"], "chat$group.g1.x@example.net");
    assert_eq!(json["group-id"], "g1");
    assert_eq!(json["content"], "hello\r\n");
    assert!(json.get("uid").is_none());
    let without = pushes_for(&store, &message(None), &delivered(true), 0, 0).expect("pushes");
    assert!(!without[0].with_content);
}

#[test]
fn folders_keywords_and_small_bodies() {
    let target = Target {
        folder: Some("COI/Chats".into()),
        flags: vec!["$chat".into()],
        create: true,
    };
    let d = Delivered::stored("a".into(), "a@x".into(), &target, '.');
    assert_eq!((d.folder.as_str(), d.chat), ("COI.Chats", true));
    let inbox = Delivered::stored("a".into(), "a@x".into(), &Target::inbox(), '.');
    assert_eq!((inbox.folder.as_str(), inbox.chat), ("INBOX", false));
    let whole = b"Subject: x\r\n\r\nbody\r\n";
    let m = DeliveredMessage::new(b"Subject: x\r\n\r\n".to_vec(), Some(whole), None);
    assert_eq!(m.body.as_deref(), Some(&b"body\r\n"[..]));
    let big = [&b"Subject: x\r\n\r\n"[..], &[b'x'; 5000][..]].concat();
    assert_eq!(
        DeliveredMessage::new(Vec::new(), Some(&big), None).body,
        None
    );
    assert_eq!(DeliveredMessage::new(Vec::new(), None, None).body, None);
}

#[test]
fn a_message_past_the_pending_bound_pushes_nothing() {
    let (_dir, store) = store();
    let hook = PushHook {
        queue: PushQueue::new(store.clone(), &crate::config::PushConfig::default()),
        kinds: HookKinds {
            webpush: true,
            deltachat: None,
        },
        tasks: TaskTracker::new(),
        pending: Arc::new(Semaphore::new(1)),
        targets: TargetUsers::new(store.clone()),
        batch: Arc::default(),
    };
    let pending = || {
        store
            .pending_pushes(crate::store::PushKind::WebPush, ALICE, "chat")
            .expect("count")
    };
    let before = pending();
    let rt = current_thread();
    // Three different messages (one Message-ID each: the same one twice would be
    // queued once, see `a_message_delivered_again_queues_its_pushes_once`).
    let nth = |n: u8| numbered(&n.to_string());
    rt.block_on(async {
        hook.after_delivery(nth(1), delivered(true));
        // The first message still holds the only permit: this one is dropped.
        hook.after_delivery(nth(2), delivered(true));
        hook.flush().await;
        // Its permit is back once it is queued.
        hook.after_delivery(nth(3), delivered(true));
        hook.flush().await;
    });
    assert_eq!(pending(), before + 2);
}

fn with_tokens(store: &Store, user: &str, tokens: &[(&str, i64)]) {
    for (token, at) in tokens {
        let op = Op::AddToken {
            id: crate::push::deltachat::token::TokenId::of(token).into_string(),
            token: (*token).into(),
            max: 10,
        };
        store.commit(user, &[op], at * 1000).expect("token");
    }
}

fn rules(notify: crate::config::NotifyFor) -> DeltaChatRules {
    DeltaChatRules {
        notify,
        token_lifetime: std::time::Duration::from_secs(90 * 86_400),
        deadline: std::time::Duration::from_secs(60),
    }
}

const NOW_MS: i64 = 1_700_000_000_000;

#[test]
fn one_notification_per_live_token_of_each_recipient() {
    let (_dir, store) = store();
    let old = NOW_MS / 1000 - 91 * 86_400;
    with_tokens(
        &store,
        ALICE,
        &[
            ("openpgp:one", NOW_MS / 1000),
            ("openpgp:two", NOW_MS / 1000),
            ("stale", old),
        ],
    );
    with_tokens(
        &store,
        "carol@example.org",
        &[("openpgp:three", NOW_MS / 1000)],
    );
    let carol = Delivered {
        username: "carol@example.org".into(),
        address: "carol@example.org".into(),
        ..delivered(true)[0].clone()
    };
    let recipients = [delivered(true)[0].clone(), carol];
    let all = rules(crate::config::NotifyFor::All);
    let pushes = notifications_for(&store, &message(None), &recipients, &all, NOW_MS).expect("n");
    assert_eq!(pushes.len(), 3, "the stale token is not used: {pushes:?}");
    assert!(pushes.iter().all(|p| p.kind == PushKind::DeltaChat
        && p.not_before == NOW_MS
        && p.deadline == NOW_MS + 60_000));
    let first = crate::push::deltachat::token::TokenId::of("openpgp:one").into_string();
    assert!(
        pushes
            .iter()
            .any(|p| p.username == ALICE && p.target == first)
    );
}

#[test]
fn no_notification_for_read_receipts_own_messages_or_email_in_chat_mode() {
    let (_dir, store) = store();
    with_tokens(&store, ALICE, &[("openpgp:one", NOW_MS / 1000)]);
    let all = rules(crate::config::NotifyFor::All);
    let chat = rules(crate::config::NotifyFor::Chat);
    let count = |m: &DeliveredMessage, rcpt: &[Delivered], r: &DeltaChatRules| {
        notifications_for(&store, m, rcpt, r, NOW_MS)
            .expect("n")
            .len()
    };
    let to_alice = delivered(true);
    assert_eq!(count(&message(None), &to_alice, &all), 1);
    let mdn = message(None).with_class(Class::Mdn);
    assert_eq!(count(&mdn, &to_alice, &all), 0, "read receipt");
    let email = message(None).with_class(Class::Email);
    assert_eq!(
        count(&email, &to_alice, &all),
        1,
        "email notifies by default"
    );
    assert_eq!(count(&email, &to_alice, &chat), 0, "not in chat mode");
    assert_eq!(count(&message(None), &to_alice, &chat), 1);
    let own = DeliveredMessage {
        header: b"From: Alice <ALICE@example.org>\r\nSubject: x\r\n\r\n".to_vec(),
        ..message(None)
    };
    assert_eq!(
        count(&own, &to_alice, &all),
        0,
        "her own message, From in another case"
    );
    let to_alias = vec![Delivered {
        address: "alice+chat@example.org".into(),
        ..to_alice[0].clone()
    }];
    assert_eq!(
        count(&own, &to_alias, &all),
        0,
        "From is the user, RCPT an extension"
    );
}

#[test]
fn a_message_without_a_header_still_pushes() {
    let (_dir, store) = store();
    let headerless = DeliveredMessage {
        header: b"\r\n".to_vec(),
        body: Some(b"\r\nno header, a body\r\n".to_vec()),
        group_id: None,
        class: Class::Email,
        began: Instant::now(),
    };
    let pushes = pushes_for(&store, &headerless, &delivered(false), 5, 9).expect("pushes");
    assert_eq!(ids(&pushes), ["all", "mail"]);
}

/// Postfix delivers at least once: the same message delivered again makes the same
/// dedupe keys (from its Message-ID, or without one from its header section), so its
/// pushes are queued once; another message makes other keys.
#[test]
fn a_message_delivered_again_queues_its_pushes_once() {
    let (_dir, store) = store();
    let before = store.queue_len().expect("len");
    let first = pushes_for(&store, &message(None), &delivered(true), 5, 9).expect("pushes");
    assert!(first.iter().all(|p| p.dedupe.is_some()));
    let again = pushes_for(&store, &message(None), &delivered(true), 5, 9).expect("pushes");
    assert_eq!(first, again);
    store.enqueue(&first, 100, 5).expect("enqueue");
    store.enqueue(&again, 100, 5).expect("enqueue again");
    assert_eq!(store.queue_len().expect("len"), before + first.len());
    let no_id = |subject: &str| DeliveredMessage {
        header: format!("From: b@x\r\nSubject: {subject}\r\n\r\n").into_bytes(),
        ..message(None)
    };
    let keys = |m: &DeliveredMessage| -> Vec<Option<String>> {
        let pushes = pushes_for(&store, m, &delivered(true), 5, 9).expect("pushes");
        pushes.into_iter().map(|p| p.dedupe).collect()
    };
    assert_eq!(keys(&no_id("a")), keys(&no_id("a")));
    assert_ne!(keys(&no_id("a")), keys(&no_id("b")));
    assert_ne!(keys(&no_id("a")), keys(&message(None)));
}

/// A recipient without any push target costs no task (no blocking hop, no query)
/// once the set of users with targets is current; a subscription added later is
/// seen by the next message.
#[test]
fn users_without_targets_cost_no_task_until_they_subscribe() {
    let (_dir, store) = store();
    let hook = PushHook::new(
        PushQueue::new(store.clone(), &crate::config::PushConfig::default()),
        HookKinds {
            webpush: true,
            deltachat: Some(rules(crate::config::NotifyFor::All)),
        },
    );
    const BOB: &str = "bob@example.org";
    let to_bob = || {
        vec![Delivered {
            username: BOB.into(),
            address: BOB.into(),
            folder: "INBOX".into(),
            chat: true,
        }]
    };
    let queued = || store.queue_len().expect("count");
    let rt = current_thread();
    rt.block_on(async {
        // Nothing read yet: unknown, so the slow path, which reads the set.
        let bob_has_targets = || hook.targets.any([BOB].into_iter(), Instant::now());
        assert_eq!(bob_has_targets(), None);
        hook.after_delivery(message(None), to_bob());
        hook.flush().await;
        // Known now: after_delivery returns before it takes a permit or starts a job
        // (checked on the hook's own answer, not on a task count that a quick blocking
        // job could already have brought back to zero).
        assert_eq!(bob_has_targets(), Some(false));
        let before = queued();
        // As if a job were running: a message taken in would wait in the batch, so
        // an empty batch shows none was.
        lock(&hook.batch).running = true;
        for _ in 0..3 {
            hook.after_delivery(message(None), to_bob());
            assert!(
                lock(&hook.batch).jobs.is_empty(),
                "no job for a user without targets"
            );
            assert_eq!(hook.pending.available_permits(), MAX_PENDING);
        }
        lock(&hook.batch).running = false;
        hook.flush().await;
        assert_eq!(queued(), before);
        // Alice has subscriptions: her messages still push.
        hook.after_delivery(message(None), delivered(true));
        hook.flush().await;
        assert_eq!(queued(), before + 2, "chat and all");
        // Bob's Delta Chat sets a token (the dict's commit): his next message notifies.
        with_tokens(&store, BOB, &[("openpgp:bob", unix_now_ms() / 1000)]);
        assert_eq!(bob_has_targets(), None, "the set is stale: read again");
        let before = queued();
        hook.after_delivery(message(None), to_bob());
        hook.flush().await;
        assert_eq!(queued(), before + 1);
    });
}

/// A hook over `store` that queues Web Push only.
/// [`message`] (no body) with its own Message-ID, told apart by `tag`.
fn numbered(tag: &str) -> DeliveredMessage {
    DeliveredMessage {
        header: String::from_utf8_lossy(HEADER)
            .replace(".x@", &format!(".{tag}@"))
            .into_bytes(),
        ..message(None)
    }
}

/// A runtime for a test that blocks on the hook's work.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn webpush_hook(store: &Store) -> PushHook {
    PushHook::new(
        PushQueue::new(store.clone(), &crate::config::PushConfig::default()),
        HookKinds {
            webpush: true,
            deltachat: None,
        },
    )
}

/// Another process holds the state store's write lock past SQLite's 5 s busy
/// timeout while a message is delivered: its pushes are queued once the lock is gone,
/// not dropped.
#[test]
fn pushes_wait_out_a_write_lock_longer_than_the_busy_timeout() {
    let (_dir, store) = store();
    let hook = webpush_hook(&store);
    let before = store.queue_len().expect("count");
    let locker =
        rusqlite::Connection::open(store.path().expect("sqlite")).expect("second connection");
    locker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        locked_tx.send(()).expect("say locked");
        std::thread::sleep(std::time::Duration::from_secs(7));
        locker.execute_batch("COMMIT").expect("unlock");
    });
    locked_rx.recv().expect("locked");
    let rt = current_thread();
    rt.block_on(async {
        hook.after_delivery(message(None), delivered(true));
        hook.flush().await;
    });
    holder.join().expect("lock holder");
    assert_eq!(
        store.queue_len().expect("count"),
        before + 2,
        "chat and all"
    );
}

/// Messages delivered within [`GATHER`] of each other share one transaction: the
/// blocking job waits that long before it takes what waits.
#[test]
fn messages_delivered_close_together_share_a_transaction() {
    let (_dir, store) = store();
    let hook = webpush_hook(&store);
    let nth = |n: u8| numbered(&format!("g{n}"));
    let before = store.queue_len().expect("count");
    let rt = current_thread();
    rt.block_on(async {
        for n in 0..3 {
            hook.after_delivery(nth(n), delivered(true));
            tokio::time::sleep(GATHER / 10).await;
        }
        hook.flush().await;
    });
    assert_eq!(
        store.queue_len().expect("count"),
        before + 6,
        "chat and all, 3 messages"
    );
    assert_eq!(lock(&hook.batch).rounds, 1, "one transaction for the three");
}

/// The pipeline hands a message's pushes to the hook only once its replies are out:
/// when the [`crate::pipeline::After`] that comes with them is dropped (the LMTP
/// connection drops it after writing the replies).
#[tokio::test]
async fn pushes_go_to_the_hook_once_the_replies_are_out() {
    let (dir, store) = store();
    let mut config = crate::config::Config::default();
    config.coi.enabled = true;
    let policy = crate::policy::Policy::load("", 10_000).expect("built-in policy");
    let backend = Arc::new(crate::delivery::memory::Memory::default());
    let pipeline =
        crate::pipeline::Pipeline::new(&config, Arc::new(policy), store.clone(), backend)
            .with_push(webpush_hook(&store));
    let envelope = crate::lmtp::Envelope {
        mail_from: "bob@example.net".into(),
        recipients: vec![crate::lmtp::Recipient::new(ALICE)],
        ..crate::lmtp::Envelope::default()
    };
    let mut writer = crate::spool::SpoolWriter::new(1 << 16, dir.path());
    writer.write(HEADER).await.expect("spool");
    let body = writer.finish().await.expect("spooled");
    let before = store.queue_len().expect("count");
    let (replies, after) = pipeline.process(&envelope, &body).await;
    assert_eq!(replies.as_slice(), [crate::answer::DELIVERED]);
    pipeline.flush_pushes().await;
    assert_eq!(
        store.queue_len().expect("count"),
        before,
        "queued before the replies"
    );
    drop(after);
    pipeline.flush_pushes().await;
    assert!(store.queue_len().expect("count") > before, "never queued");
}

/// Handed to the worker, the hook queues nothing itself: a message waits, with no
/// blocking job, until the worker's round takes it and builds its pushes; once the
/// worker is gone, `flush` queues what it left.
#[test]
fn handed_to_the_worker_the_hook_starts_no_job() {
    let (_dir, store) = store();
    let hook = webpush_hook(&store);
    let nth = |n: u8| numbered(&format!("h{n}"));
    let before = store.queue_len().expect("count");
    let rt = current_thread();
    rt.block_on(async {
        hook.hand_to_worker(true);
        hook.after_delivery(nth(1), delivered(true));
        assert!(hook.waiting());
        assert!(hook.tasks.is_empty(), "no blocking job");
        let handed = hook.take();
        assert_eq!(handed.len(), 1);
        assert!(!hook.waiting());
        let pushes = hook.pushes_of_handed(&handed, unix_now_ms());
        assert_eq!(ids(&pushes), ["all", "chat"]);

        hook.after_delivery(nth(2), delivered(true));
        assert!(hook.tasks.is_empty());
        hook.flush().await;
    });
    assert!(!hook.waiting());
    assert_eq!(
        store.queue_len().expect("count"),
        before + 2,
        "the message left behind, queued by flush (chat and all)"
    );
}
