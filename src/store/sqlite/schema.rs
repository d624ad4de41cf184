//! The state store's schema, as numbered migrations (`PRAGMA user_version`): each one
//! moves the schema a version up in its own SQLite transaction and keeps the data.
//!
//! Times are unix seconds in the METADATA tables and subscriptions, unix milliseconds
//! in the push queue (its waits are shorter than a second in tests).

/// Entry `i` takes `PRAGMA user_version` from `i` to `i + 1`.
pub(in crate::store) const MIGRATIONS: [&str; 14] = [
    // 1: the users' METADATA entries (COI settings), by entry name.
    "CREATE TABLE IF NOT EXISTS user_metadata (
        username TEXT NOT NULL,
        entry    TEXT NOT NULL,
        value    TEXT NOT NULL,
        updated  INTEGER NOT NULL,
        PRIMARY KEY (username, entry)
    ) WITHOUT ROWID;",
    // 2: every other key of Dovecot's attribute dictionary, verbatim (dict proxy).
    "CREATE TABLE IF NOT EXISTS dict_attributes (
        username TEXT NOT NULL,
        key      TEXT NOT NULL,
        value    TEXT NOT NULL,
        updated  INTEGER NOT NULL,
        PRIMARY KEY (username, key)
    ) WITHOUT ROWID;",
    // 3: Web Push. The server's own secrets (the VAPID private key); the users'
    // subscriptions (WebPush METADATA entries, kept apart from the plain entries);
    // the durable push queue. WebPush entries that version 2 stored as plain METADATA
    // were never served as subscriptions (never validated): they are dropped.
    "CREATE TABLE IF NOT EXISTS server_secrets (
        name    TEXT NOT NULL PRIMARY KEY,
        value   TEXT NOT NULL,
        created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS push_subscriptions (
        username     TEXT NOT NULL,
        id           TEXT NOT NULL,
        client       TEXT NOT NULL,
        device       TEXT NOT NULL,
        msgtype      TEXT NOT NULL,
        endpoint     TEXT NOT NULL,
        p256dh       TEXT NOT NULL,
        auth         TEXT NOT NULL,
        created      INTEGER NOT NULL,
        validation   TEXT NOT NULL,
        validated_at INTEGER,
        PRIMARY KEY (username, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS push_subscriptions_endpoint ON push_subscriptions (endpoint);
    CREATE TABLE IF NOT EXISTS push_queue (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        username     TEXT NOT NULL,
        subscription TEXT NOT NULL,
        payload      TEXT NOT NULL,
        with_content INTEGER NOT NULL,
        validation   INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        not_before   INTEGER NOT NULL,
        deadline     INTEGER NOT NULL,
        created      INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS push_queue_due ON push_queue (not_before);
    CREATE INDEX IF NOT EXISTS push_queue_subscription ON push_queue (username, subscription);
    DELETE FROM user_metadata
     WHERE entry >= '/private/vendor/vendor.dovecot/webpush/'
       AND entry < '/private/vendor/vendor.dovecot/webpush0';",
    // 4: Delta Chat. Device tokens (opaque, set over IMAP METADATA on
    // /private/devicetoken), one row per (user, token id); and the push queue gains
    // its kind (0 Web Push, 1 Delta Chat), its `subscription` column becoming the
    // target (a subscription id or a token id). Tokens that version 3 stored as plain
    // attributes (the last one set per mailbox, never used) are dropped: they would
    // show in listings, and Delta Chat sets its token again at every IMAP login.
    "CREATE TABLE IF NOT EXISTS deltachat_tokens (
        username TEXT NOT NULL,
        id       TEXT NOT NULL,
        token    TEXT NOT NULL,
        created  INTEGER NOT NULL,
        updated  INTEGER NOT NULL,
        PRIMARY KEY (username, id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS deltachat_tokens_updated ON deltachat_tokens (updated);
    ALTER TABLE push_queue RENAME COLUMN subscription TO target;
    ALTER TABLE push_queue ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
    DELETE FROM dict_attributes
     WHERE key GLOB 'priv/*/devicetoken' AND key NOT GLOB 'priv/*/*/devicetoken';
    DELETE FROM user_metadata WHERE entry = '/private/devicetoken';",
    // 5: a counter that moves with every change to the users' METADATA entries
    // (the COI settings), whoever writes them: the delivery path's settings cache
    // (`super::coi_cache`) is good while it stands still, and push queue writes no
    // longer make it read everything again.
    "CREATE TABLE IF NOT EXISTS settings_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n  INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO settings_version (id, n) VALUES (1, 0);
    CREATE TRIGGER IF NOT EXISTS settings_version_insert AFTER INSERT ON user_metadata
    BEGIN UPDATE settings_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS settings_version_update AFTER UPDATE ON user_metadata
    BEGIN UPDATE settings_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS settings_version_delete AFTER DELETE ON user_metadata
    BEGIN UPDATE settings_version SET n = n + 1 WHERE id = 1; END;",
    // 6: a counter that moves whenever a user may gain or lose their last push target
    // (a subscription or device token row inserted, deleted, or moved to another
    // user), whoever writes: the push hook's set of users with targets
    // (`super::target_users`) is good while it stands still. Updates that keep the
    // row's user (validation, a token set again at login) leave it alone.
    "CREATE TABLE IF NOT EXISTS targets_version (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n  INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO targets_version (id, n) VALUES (1, 0);
    CREATE TRIGGER IF NOT EXISTS targets_version_sub_insert AFTER INSERT ON push_subscriptions
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS targets_version_sub_delete AFTER DELETE ON push_subscriptions
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS targets_version_sub_user
    AFTER UPDATE OF username ON push_subscriptions
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS targets_version_token_insert AFTER INSERT ON deltachat_tokens
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS targets_version_token_delete AFTER DELETE ON deltachat_tokens
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS targets_version_token_user
    AFTER UPDATE OF username ON deltachat_tokens
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; END;",
    // 7: the push queue's length, kept by triggers in the same transaction as every
    // insert and delete, so checking `max_queue` when queueing costs one row read
    // instead of counting the whole queue (which grows when a push service is slow,
    // exactly when queueing must stay cheap).
    "CREATE TABLE IF NOT EXISTS push_queue_size (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        n  INTEGER NOT NULL
    );
    INSERT OR IGNORE INTO push_queue_size (id, n) SELECT 1, count(*) FROM push_queue;
    CREATE TRIGGER IF NOT EXISTS push_queue_size_insert AFTER INSERT ON push_queue
    BEGIN UPDATE push_queue_size SET n = n + 1 WHERE id = 1; END;
    CREATE TRIGGER IF NOT EXISTS push_queue_size_delete AFTER DELETE ON push_queue
    BEGIN UPDATE push_queue_size SET n = n - 1 WHERE id = 1; END;",
    // 8: a payload shared by several pushes (one message's pushes to a user's
    // devices: the same JSON, up to 3993 bytes each) is stored once, in
    // `push_payloads`, and the rows point at it (`payload_id`; their own `payload`
    // is then empty). Triggers delete a shared payload with the last row that points
    // at it, in the same transaction.
    "CREATE TABLE IF NOT EXISTS push_payloads (
        id      INTEGER PRIMARY KEY,
        payload TEXT NOT NULL
    );
    ALTER TABLE push_queue ADD COLUMN payload_id INTEGER;
    CREATE INDEX IF NOT EXISTS push_queue_payload ON push_queue (payload_id)
     WHERE payload_id IS NOT NULL;
    CREATE TRIGGER IF NOT EXISTS push_payloads_delete AFTER DELETE ON push_queue
    WHEN old.payload_id IS NOT NULL
    BEGIN DELETE FROM push_payloads WHERE id = old.payload_id AND NOT EXISTS
          (SELECT 1 FROM push_queue WHERE payload_id = old.payload_id); END;
    CREATE TRIGGER IF NOT EXISTS push_payloads_detach AFTER UPDATE OF payload_id ON push_queue
    WHEN old.payload_id IS NOT NULL AND new.payload_id IS NOT old.payload_id
    BEGIN DELETE FROM push_payloads WHERE id = old.payload_id AND NOT EXISTS
          (SELECT 1 FROM push_queue WHERE payload_id = old.payload_id); END;",
    // 9: a push of a delivered message carries a dedupe key (a digest of the
    // message's identity, user, kind and target): Postfix delivers at least once, and
    // a message delivered again while its pushes are queued must not queue them twice.
    // Rows queued before have none (NULL: never a conflict).
    "ALTER TABLE push_queue ADD COLUMN dedupe TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS push_queue_dedupe ON push_queue (dedupe)
     WHERE dedupe IS NOT NULL;",
    // 10: dedupe keys outlive their rows (`crate::store::DEDUPE_KEEP_MS`): Postfix's
    // retry of a lost reply comes minutes later, when the pushes are long sent.
    "CREATE TABLE IF NOT EXISTS push_dedupe (
        key        TEXT PRIMARY KEY,
        keep_until INTEGER NOT NULL
    );",
    // 11: queueing a message's pushes writes fewer pages. The queue's unique index of
    // dedupe keys goes: a key in `push_dedupe` now lives at least until its row's
    // deadline, so it alone keeps duplicates out (keys of rows queued now are kept
    // that long first). `push_dedupe` becomes WITHOUT ROWID: one B-tree instead of
    // a table and its key index. Keys made from now on sort by message
    // (`crate::store::dedupe_key`), so a message's keys share a page or two.
    "INSERT INTO push_dedupe (key, keep_until)
     SELECT dedupe, max(deadline) FROM push_queue WHERE dedupe IS NOT NULL GROUP BY dedupe
     ON CONFLICT (key) DO UPDATE SET keep_until = max(keep_until, excluded.keep_until);
    DROP INDEX IF EXISTS push_queue_dedupe;
    CREATE TABLE push_dedupe_11 (
        key        TEXT PRIMARY KEY,
        keep_until INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO push_dedupe_11 (key, keep_until) SELECT key, keep_until FROM push_dedupe;
    DROP TABLE push_dedupe;
    ALTER TABLE push_dedupe_11 RENAME TO push_dedupe;",
    // 12: the queue's index of targets becomes one of users. Keyed by (user, target),
    // a message's rows for a user with several devices landed on one index page per
    // device once the queue held a few hundred rows of that user, so queueing them
    // wrote that many pages; keyed by user alone (then seq), they append to one. The
    // rare lookups by target (a subscription or token removed) read the user's rows.
    "DROP INDEX IF EXISTS push_queue_subscription;
    CREATE INDEX IF NOT EXISTS push_queue_user ON push_queue (username);",
    // 13: a shared payload counts the rows that carry it (`refs`, kept by triggers)
    // instead of the queue keeping an index of `payload_id` for the triggers to look
    // in: that index was one more B-tree to write for every row queued or deleted,
    // and appending to an index moves entries among up to three leaves when one
    // fills. The payload still goes with the last row that carries it, in the same
    // transaction.
    "ALTER TABLE push_payloads ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;
    UPDATE push_payloads
       SET refs = (SELECT count(*) FROM push_queue WHERE payload_id = push_payloads.id);
    DELETE FROM push_payloads WHERE refs = 0;
    DROP TRIGGER IF EXISTS push_payloads_delete;
    DROP TRIGGER IF EXISTS push_payloads_detach;
    DROP INDEX IF EXISTS push_queue_payload;
    CREATE TRIGGER push_payloads_attach AFTER INSERT ON push_queue
    WHEN new.payload_id IS NOT NULL
    BEGIN UPDATE push_payloads SET refs = refs + 1 WHERE id = new.payload_id; END;
    CREATE TRIGGER push_payloads_delete AFTER DELETE ON push_queue
    WHEN old.payload_id IS NOT NULL
    BEGIN UPDATE push_payloads SET refs = refs - 1 WHERE id = old.payload_id;
          DELETE FROM push_payloads WHERE id = old.payload_id AND refs <= 0; END;
    CREATE TRIGGER push_payloads_detach AFTER UPDATE OF payload_id ON push_queue
    WHEN old.payload_id IS NOT NULL AND new.payload_id IS NOT old.payload_id
    BEGIN UPDATE push_payloads SET refs = refs - 1 WHERE id = old.payload_id;
          DELETE FROM push_payloads WHERE id = old.payload_id AND refs <= 0;
          UPDATE push_payloads SET refs = refs + 1 WHERE id = new.payload_id; END;",
    // 14: queueing a message counts once instead of once per row. The queue's rows
    // are numbered from `push_queue_size.next_seq`, which the transaction that
    // queues them moves on once with the length `n`, instead of by AUTOINCREMENT
    // (`sqlite_sequence`: one more page per transaction and a read and a write of it
    // per row); numbers are still never reused, so a push the worker holds cannot
    // settle a newer row that took its number. The insert triggers go the same way:
    // the length and a shared payload's `refs` are added to once per transaction by
    // the code that inserts (`queue::enqueue_in`, and the import, which counts after
    // it). Deletes keep their triggers. The table is rebuilt (SQLite cannot drop
    // AUTOINCREMENT), its rows, numbers and indexes kept.
    "CREATE TABLE push_queue_14 (
        seq          INTEGER PRIMARY KEY,
        username     TEXT NOT NULL,
        target       TEXT NOT NULL,
        payload      TEXT NOT NULL,
        with_content INTEGER NOT NULL,
        validation   INTEGER NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        not_before   INTEGER NOT NULL,
        deadline     INTEGER NOT NULL,
        created      INTEGER NOT NULL,
        kind         INTEGER NOT NULL DEFAULT 0,
        payload_id   INTEGER,
        dedupe       TEXT
    );
    INSERT INTO push_queue_14 (seq, username, target, payload, with_content, validation,
                               attempts, not_before, deadline, created, kind,
                               payload_id, dedupe)
    SELECT seq, username, target, payload, with_content, validation, attempts,
           not_before, deadline, created, kind, payload_id, dedupe
      FROM push_queue;
    ALTER TABLE push_queue_size ADD COLUMN next_seq INTEGER NOT NULL DEFAULT 1;
    UPDATE push_queue_size
       SET n = (SELECT count(*) FROM push_queue),
           next_seq = 1 + max(
               coalesce((SELECT max(seq) FROM push_queue), 0),
               coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'push_queue'), 0));
    DROP TABLE push_queue;
    ALTER TABLE push_queue_14 RENAME TO push_queue;
    CREATE INDEX push_queue_due ON push_queue (not_before);
    CREATE INDEX push_queue_user ON push_queue (username);
    CREATE TRIGGER push_queue_size_delete AFTER DELETE ON push_queue
    BEGIN UPDATE push_queue_size SET n = n - 1 WHERE id = 1; END;
    CREATE TRIGGER push_payloads_delete AFTER DELETE ON push_queue
    WHEN old.payload_id IS NOT NULL
    BEGIN UPDATE push_payloads SET refs = refs - 1 WHERE id = old.payload_id;
          DELETE FROM push_payloads WHERE id = old.payload_id AND refs <= 0; END;
    CREATE TRIGGER push_payloads_detach AFTER UPDATE OF payload_id ON push_queue
    WHEN old.payload_id IS NOT NULL AND new.payload_id IS NOT old.payload_id
    BEGIN UPDATE push_payloads SET refs = refs - 1 WHERE id = old.payload_id;
          DELETE FROM push_payloads WHERE id = old.payload_id AND refs <= 0;
          UPDATE push_payloads SET refs = refs + 1 WHERE id = new.payload_id; END;",
];
