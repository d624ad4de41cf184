//! The server's own secrets (today: the VAPID private key), created once on first use
//! and then never changed: clients register the VAPID public key with their push
//! service, which pins it. Nothing here is ever served to a client; the WebPush
//! METADATA entry shows only the public half (`crate::dict::webpush`).

/// The name of the VAPID private key (PKCS#8 PEM).
pub const SECRET_VAPID: &str = "vapid";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{Kind, store_of};
    use rstest::rstest;

    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn created_once_and_kept(#[case] kind: Kind) {
        let (guard, store) = store_of(kind);
        let first = store
            .secret_or_insert(SECRET_VAPID, || "one".into())
            .expect("create");
        assert_eq!(first, "one");
        drop(store);
        let store = guard.reopen();
        let again = store
            .secret_or_insert(SECRET_VAPID, || "two".into())
            .expect("read");
        assert_eq!(again, "one");
    }

    /// Processes (or nodes) starting at once, each with a connection of its own and a
    /// key of its own, end with one key.
    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn nodes_starting_at_once_agree_on_one_key(#[case] kind: Kind) {
        let (guard, _store) = store_of(kind);
        let nodes: Vec<_> = (0..6).map(|_| guard.reopen()).collect();
        let start = std::sync::Barrier::new(nodes.len());
        let keys: Vec<String> = std::thread::scope(|s| {
            let running: Vec<_> = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        node.secret_or_insert(SECRET_VAPID, || format!("key-{i}"))
                            .expect("secret")
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|t| t.join().expect("thread"))
                .collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        let stored = guard
            .reopen()
            .secret_or_insert(SECRET_VAPID, || "late".into())
            .expect("read");
        assert_eq!(stored, keys[0]);
    }
}
