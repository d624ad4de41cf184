//! The PostgreSQL schema, as numbered migrations recorded in `coid_schema`: the same
//! tables and meaning as SQLite's (`crate::store::sqlite::schema`), written at once at
//! SQLite's version 9, with PostgreSQL's types. Keys compare byte-wise (`COLLATE "C"`),
//! as Dovecot's dicts and SQLite do. Counters (`settings_version`, `targets_version`,
//! `push_queue_size`) are kept by row triggers in the writing transaction, whoever
//! writes, so every node sees every node's changes. A payload shared by several rows
//! is not stored apart here (SQLite's `push_payloads`): each row holds its own.

/// Entry `i` takes `coid_schema.version` from `i` to `i + 1`.
pub(super) const MIGRATIONS: [&str; 2] = [
    // 1: everything SQLite has at version 9.
    r#"
    CREATE TABLE user_metadata (
        username TEXT COLLATE "C" NOT NULL,
        entry    TEXT COLLATE "C" NOT NULL,
        value    TEXT NOT NULL,
        updated  BIGINT NOT NULL,
        PRIMARY KEY (username, entry)
    );
    CREATE TABLE dict_attributes (
        username TEXT COLLATE "C" NOT NULL,
        key      TEXT COLLATE "C" NOT NULL,
        value    TEXT NOT NULL,
        updated  BIGINT NOT NULL,
        PRIMARY KEY (username, key)
    );
    CREATE TABLE server_secrets (
        name    TEXT NOT NULL PRIMARY KEY,
        value   TEXT NOT NULL,
        created BIGINT NOT NULL
    );
    CREATE TABLE push_subscriptions (
        username     TEXT COLLATE "C" NOT NULL,
        id           TEXT COLLATE "C" NOT NULL,
        client       TEXT NOT NULL,
        device       TEXT NOT NULL,
        msgtype      TEXT NOT NULL,
        endpoint     TEXT NOT NULL,
        p256dh       TEXT NOT NULL,
        auth         TEXT NOT NULL,
        created      BIGINT NOT NULL,
        validation   TEXT NOT NULL,
        validated_at BIGINT,
        PRIMARY KEY (username, id)
    );
    CREATE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
    CREATE TABLE deltachat_tokens (
        username TEXT COLLATE "C" NOT NULL,
        id       TEXT COLLATE "C" NOT NULL,
        token    TEXT NOT NULL,
        created  BIGINT NOT NULL,
        updated  BIGINT NOT NULL,
        PRIMARY KEY (username, id)
    );
    CREATE INDEX deltachat_tokens_updated ON deltachat_tokens (updated);
    CREATE TABLE push_queue (
        seq          BIGSERIAL PRIMARY KEY,
        username     TEXT COLLATE "C" NOT NULL,
        target       TEXT COLLATE "C" NOT NULL,
        payload      TEXT NOT NULL,
        with_content BOOLEAN NOT NULL,
        validation   BOOLEAN NOT NULL,
        attempts     BIGINT NOT NULL DEFAULT 0,
        not_before   BIGINT NOT NULL,
        deadline     BIGINT NOT NULL,
        created      BIGINT NOT NULL,
        kind         BIGINT NOT NULL DEFAULT 0,
        dedupe       TEXT
    );
    CREATE INDEX push_queue_due ON push_queue (not_before);
    CREATE INDEX push_queue_target ON push_queue (username, target);
    CREATE UNIQUE INDEX push_queue_dedupe ON push_queue (dedupe) WHERE dedupe IS NOT NULL;

    CREATE TABLE settings_version (id INT PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
    INSERT INTO settings_version VALUES (1, 0);
    CREATE FUNCTION coid_settings_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE settings_version SET n = n + 1 WHERE id = 1; RETURN NULL; END $$;
    CREATE TRIGGER settings_version_change AFTER INSERT OR UPDATE OR DELETE
        ON user_metadata FOR EACH ROW EXECUTE FUNCTION coid_settings_moved();

    CREATE TABLE targets_version (id INT PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
    INSERT INTO targets_version VALUES (1, 0);
    CREATE FUNCTION coid_targets_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE targets_version SET n = n + 1 WHERE id = 1; RETURN NULL; END $$;
    CREATE TRIGGER targets_version_sub AFTER INSERT OR DELETE OR UPDATE OF username
        ON push_subscriptions FOR EACH ROW EXECUTE FUNCTION coid_targets_moved();
    CREATE TRIGGER targets_version_token AFTER INSERT OR DELETE OR UPDATE OF username
        ON deltachat_tokens FOR EACH ROW EXECUTE FUNCTION coid_targets_moved();

    CREATE TABLE push_queue_size (id INT PRIMARY KEY CHECK (id = 1), n BIGINT NOT NULL);
    INSERT INTO push_queue_size VALUES (1, 0);
    CREATE FUNCTION coid_queue_size() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN UPDATE push_queue_size SET n = n + 1 WHERE id = 1;
        ELSE UPDATE push_queue_size SET n = n - 1 WHERE id = 1; END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER push_queue_size_change AFTER INSERT OR DELETE
        ON push_queue FOR EACH ROW EXECUTE FUNCTION coid_queue_size();
    "#,
    // 2: dedupe keys outlive their rows (SQLite's version 10).
    r#"
    CREATE TABLE push_dedupe (
        key        TEXT COLLATE "C" PRIMARY KEY,
        keep_until BIGINT NOT NULL
    );
    "#,
];
