//! The whole state over PostgreSQL, out and in (`crate::store::transfer`): an export
//! reads every table in one `REPEATABLE READ` read-only transaction (one snapshot)
//! through a portal, a batch of rows at a time; an import locks the state's tables,
//! checks they hold nothing, and writes every row in one transaction, so nodes
//! started too early wait for it rather than write in between.

use postgres::{GenericClient, IsolationLevel, Row as PgRow, Transaction};

use super::Postgres;
use super::queue::locked_len;
use crate::store::transfer::{Row, STATE_TABLES, TransferError};

/// Rows fetched from the portal at a time (bounded memory whatever the table's size).
const BATCH: i32 = 500;

/// Each table's rows, in the order the export writes them, and how a row reads.
type Reads = [(&'static str, fn(&PgRow) -> Row); 6];

const READS: Reads = [
    (
        "SELECT username, entry, value, updated FROM user_metadata ORDER BY username, entry",
        |r| Row::Metadata {
            username: r.get(0),
            entry: r.get(1),
            value: r.get(2),
            updated: r.get(3),
        },
    ),
    (
        "SELECT username, key, value, updated FROM dict_attributes ORDER BY username, key",
        |r| Row::Attribute {
            username: r.get(0),
            key: r.get(1),
            value: r.get(2),
            updated: r.get(3),
        },
    ),
    (
        "SELECT name, value, created FROM server_secrets ORDER BY name",
        |r| Row::Secret {
            name: r.get(0),
            value: r.get(1),
            created: r.get(2),
        },
    ),
    (
        "SELECT username, id, client, device, msgtype, endpoint, p256dh, auth, created,
                validation, validated_at
           FROM push_subscriptions ORDER BY username, id",
        |r| Row::Subscription {
            username: r.get(0),
            id: r.get(1),
            client: r.get(2),
            device: r.get(3),
            msgtype: r.get(4),
            endpoint: r.get(5),
            p256dh: r.get(6),
            auth: r.get(7),
            created: r.get(8),
            validation: r.get(9),
            validated_at: r.get(10),
        },
    ),
    (
        "SELECT username, id, token, created, updated FROM deltachat_tokens
          ORDER BY username, id",
        |r| Row::Token {
            username: r.get(0),
            id: r.get(1),
            token: r.get(2),
            created: r.get(3),
            updated: r.get(4),
        },
    ),
    (
        "SELECT kind, username, target, payload, with_content, validation, attempts,
                not_before, deadline, created, dedupe
           FROM push_queue ORDER BY seq",
        |r| Row::Push {
            kind: r.get(0),
            username: r.get(1),
            target: r.get(2),
            payload: r.get(3),
            with_content: r.get(4),
            validation: r.get(5),
            attempts: r.get(6),
            not_before: r.get(7),
            deadline: r.get(8),
            created: r.get(9),
            dedupe: r.get(10),
        },
    ),
];

impl Postgres {
    pub(super) fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        for (sql, read) in READS {
            let portal = tx.bind(sql, &[])?;
            loop {
                let rows = tx.query_portal(&portal, BATCH)?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    sink(read(row))?;
                }
            }
        }
        Ok(tx.commit()?)
    }

    pub(super) fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        // The queue's counter first (the one lock order, `super::queue::locked_len`),
        // then the tables: nobody writes state until this transaction ends.
        locked_len(&mut tx)?;
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE",
            STATE_TABLES.join(", ")
        ))?;
        refuse_state(&mut tx)?;
        let mut stored = 0;
        for row in rows {
            insert(&mut tx, &row?)?;
            stored += 1;
        }
        tx.commit()?;
        Ok(stored)
    }
}

/// [`TransferError::NotEmpty`] naming the tables that hold rows, if any do.
fn refuse_state(tx: &mut Transaction<'_>) -> Result<(), TransferError> {
    let mut holding = Vec::new();
    for table in STATE_TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
        if tx.query_one(&sql, &[])?.get::<_, bool>(0) {
            holding.push(table);
        }
    }
    if holding.is_empty() {
        return Ok(());
    }
    Err(TransferError::NotEmpty(format!(
        "rows in {}",
        holding.join(", ")
    )))
}

/// Inserts one row inside the import's transaction.
fn insert(tx: &mut impl GenericClient, row: &Row) -> Result<(), TransferError> {
    match row {
        Row::Metadata {
            username,
            entry,
            value,
            updated,
        } => tx.execute(
            "INSERT INTO user_metadata (username, entry, value, updated) VALUES ($1, $2, $3, $4)",
            &[username, entry, value, updated],
        )?,
        Row::Attribute {
            username,
            key,
            value,
            updated,
        } => tx.execute(
            "INSERT INTO dict_attributes (username, key, value, updated) VALUES ($1, $2, $3, $4)",
            &[username, key, value, updated],
        )?,
        Row::Secret {
            name,
            value,
            created,
        } => tx.execute(
            "INSERT INTO server_secrets (name, value, created) VALUES ($1, $2, $3)",
            &[name, value, created],
        )?,
        Row::Subscription {
            username,
            id,
            client,
            device,
            msgtype,
            endpoint,
            p256dh,
            auth,
            created,
            validation,
            validated_at,
        } => tx.execute(
            "INSERT INTO push_subscriptions (username, id, client, device, msgtype, endpoint,
                    p256dh, auth, created, validation, validated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                username,
                id,
                client,
                device,
                msgtype,
                endpoint,
                p256dh,
                auth,
                created,
                validation,
                validated_at,
            ],
        )?,
        Row::Token {
            username,
            id,
            token,
            created,
            updated,
        } => tx.execute(
            "INSERT INTO deltachat_tokens (username, id, token, created, updated)
             VALUES ($1, $2, $3, $4, $5)",
            &[username, id, token, created, updated],
        )?,
        Row::Push {
            kind,
            username,
            target,
            payload,
            with_content,
            validation,
            attempts,
            not_before,
            deadline,
            created,
            dedupe,
        } => tx.execute(
            "INSERT INTO push_queue (kind, username, target, payload, with_content, validation,
                    attempts, not_before, deadline, created, dedupe)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                kind,
                username,
                target,
                payload,
                with_content,
                validation,
                attempts,
                not_before,
                deadline,
                created,
                dedupe,
            ],
        )?,
    };
    Ok(())
}
