//! The server's own secrets (today: the VAPID private key), created once on first use
//! and then never changed: clients register the VAPID public key with their push
//! service, which pins it. Nothing here is ever served to a client; the WebPush
//! METADATA entry shows only the public half (`crate::dict::webpush`).

/// The name of the VAPID private key (PKCS#8 PEM).
pub const SECRET_VAPID: &str = "vapid";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).expect("open");
        let first = store
            .secret_or_insert(SECRET_VAPID, || "one".into())
            .expect("create");
        assert_eq!(first, "one");
        drop(store);
        let store = Store::open(&path).expect("reopen");
        let again = store
            .secret_or_insert(SECRET_VAPID, || "two".into())
            .expect("read");
        assert_eq!(again, "one");
    }
}
