//! What several fuzz targets share: a state store in memory with WebPush on, a user
//! with one validated subscription, and a way to run the in-memory spool's futures.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use coid::config::{CoiConfig, PushConfig, UsersConfig};
use coid::dict::Attributes;
use coid::dict::webpush::{Entry, WebPush};
use coid::push::queue::{PushQueue, vapid_key};
use coid::store::{Op, Store, unix_now_ms};

/// The user the store-backed targets act for.
pub const USER: &str = "user@example.org";
/// Their validated subscription (msgtype `all`: every delivered message pushes).
pub const SUBSCRIPTION: &str = "31754ee7-d3ee-4226-a5c8-fuzz";
/// A subscription as a client stores it (the keys are RFC 8291's example keys).
pub const SUBSCRIPTION_JSON: &str = r#"{"client":"OX COI","device":"phone","msgtype":"all","resource":{"endpoint":"https://push.example/x","keys":{"p256dh":"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4","auth":"BTBZMqHH6r4Tts7J_aSIgg"}}}"#;

/// A state store in memory (nothing left on disk when libFuzzer exits), with WebPush
/// on and [`USER`]'s validated [`SUBSCRIPTION`].
pub struct Setup {
    /// The store.
    pub store: Store,
    /// The WebPush entries over it.
    pub webpush: WebPush,
    /// The attribute dictionary over it, with WebPush.
    pub attributes: Attributes,
}

impl Setup {
    /// Builds it; panics if the store cannot be made (a broken harness, not a finding).
    pub fn new() -> Setup {
        let store = Store::open(Path::new(":memory:")).expect("store in memory");
        let push = PushConfig {
            enabled: true,
            ..PushConfig::default()
        };
        let queue = PushQueue::new(store.clone(), &push);
        let vapid = vapid_key(&store).expect("VAPID key");
        let webpush = WebPush::new(queue, &vapid);
        let now = unix_now_ms();
        let subscribe = webpush
            .plan(
                USER,
                Entry::Subscription(SUBSCRIPTION),
                Some(SUBSCRIPTION_JSON),
                now,
            )
            .expect("subscription accepted");
        let Op::Subscribe(new) = &subscribe else {
            panic!("not a subscription: {subscribe:?}");
        };
        let validate = Op::Validate {
            id: SUBSCRIPTION.into(),
            token: new.token.clone(),
            created_since: 0,
        };
        store
            .commit(USER, std::slice::from_ref(&subscribe), now)
            .expect("subscribe");
        store.commit(USER, &[validate], now).expect("validate");
        let attributes = Attributes::new(
            store.clone(),
            &UsersConfig::default(),
            &CoiConfig::default(),
        )
        .with_webpush(webpush.clone());
        Setup {
            store,
            webpush,
            attributes,
        }
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup::new()
    }
}

/// Runs a future that never waits (the in-memory spool's reads).
///
/// # Panics
/// If it waits.
pub fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("an in-memory spool read waited"),
    }
}
