//! The whole state over SQLite, out and in (`crate::store::transfer`): an export reads
//! every table in one read transaction (one snapshot) and hands each row on as it is
//! read; an import checks the database holds no state and writes every row in one
//! write transaction (`BEGIN IMMEDIATE`: no other writer slips in between).

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::Sqlite;
use crate::store::transfer::{Row, STATE_TABLES, TransferError};

/// Each table's rows, in the order the export writes them, and how a row reads.
type Reads = [(
    &'static str,
    fn(&rusqlite::Row<'_>) -> rusqlite::Result<Row>,
); 6];

const READS: Reads = [
    (
        "SELECT username, entry, value, updated FROM user_metadata ORDER BY username, entry",
        |r| {
            Ok(Row::Metadata {
                username: r.get(0)?,
                entry: r.get(1)?,
                value: r.get(2)?,
                updated: r.get(3)?,
            })
        },
    ),
    (
        "SELECT username, key, value, updated FROM dict_attributes ORDER BY username, key",
        |r| {
            Ok(Row::Attribute {
                username: r.get(0)?,
                key: r.get(1)?,
                value: r.get(2)?,
                updated: r.get(3)?,
            })
        },
    ),
    (
        "SELECT name, value, created FROM server_secrets ORDER BY name",
        |r| {
            Ok(Row::Secret {
                name: r.get(0)?,
                value: r.get(1)?,
                created: r.get(2)?,
            })
        },
    ),
    (
        "SELECT username, id, client, device, msgtype, endpoint, p256dh, auth, created,
                validation, validated_at
           FROM push_subscriptions ORDER BY username, id",
        |r| {
            Ok(Row::Subscription {
                username: r.get(0)?,
                id: r.get(1)?,
                client: r.get(2)?,
                device: r.get(3)?,
                msgtype: r.get(4)?,
                endpoint: r.get(5)?,
                p256dh: r.get(6)?,
                auth: r.get(7)?,
                created: r.get(8)?,
                validation: r.get(9)?,
                validated_at: r.get(10)?,
            })
        },
    ),
    (
        "SELECT username, id, token, created, updated FROM deltachat_tokens
          ORDER BY username, id",
        |r| {
            Ok(Row::Token {
                username: r.get(0)?,
                id: r.get(1)?,
                token: r.get(2)?,
                created: r.get(3)?,
                updated: r.get(4)?,
            })
        },
    ),
    (
        // A shared payload (schema 8) is written into each of its rows.
        "SELECT q.kind, q.username, q.target, coalesce(p.payload, q.payload),
                q.with_content, q.validation, q.attempts, q.not_before, q.deadline,
                q.created, q.dedupe
           FROM push_queue q LEFT JOIN push_payloads p ON p.id = q.payload_id
          ORDER BY q.seq",
        |r| {
            Ok(Row::Push {
                kind: r.get(0)?,
                username: r.get(1)?,
                target: r.get(2)?,
                payload: r.get(3)?,
                with_content: r.get(4)?,
                validation: r.get(5)?,
                attempts: r.get(6)?,
                not_before: r.get(7)?,
                deadline: r.get(8)?,
                created: r.get(9)?,
                dedupe: r.get(10)?,
            })
        },
    ),
];

impl Sqlite {
    /// See [`crate::store::Engine::export`].
    pub(super) fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        let mut conn = self.lock()?;
        // A read transaction: every table from the same snapshot (WAL).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        for (sql, read) in READS {
            let mut stmt = tx.prepare(sql)?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                sink(read(row)?)?;
            }
        }
        Ok(())
    }

    /// See [`crate::store::Engine::import`].
    pub(super) fn import(
        &self,
        rows: &mut dyn Iterator<Item = Result<Row, TransferError>>,
    ) -> Result<usize, TransferError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        refuse_state(&tx)?;
        let mut stored = 0;
        for row in rows {
            insert(&tx, &row?)?;
            stored += 1;
        }
        count_queue(&tx)?;
        tx.commit()?;
        Ok(stored)
    }
}

/// Counts the queue's imported rows and numbers the next row after them: the rows
/// took numbers of their own (SQLite's rowids), and no trigger counts an insert
/// (schema 14, `super::queue`).
fn count_queue(tx: &Transaction<'_>) -> Result<(), TransferError> {
    tx.execute(
        "UPDATE push_queue_size
            SET n = (SELECT count(*) FROM push_queue),
                next_seq = max(next_seq, 1 + coalesce((SELECT max(seq) FROM push_queue), 0))
          WHERE id = 1",
        [],
    )?;
    Ok(())
}

/// [`TransferError::NotEmpty`] naming the tables that hold rows, if any do.
fn refuse_state(conn: &Connection) -> Result<(), TransferError> {
    let mut holding = Vec::new();
    for table in STATE_TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {table})");
        if conn.query_row(&sql, [], |r| r.get::<_, bool>(0))? {
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
fn insert(tx: &Transaction<'_>, row: &Row) -> Result<(), TransferError> {
    match row {
        Row::Metadata {
            username,
            entry,
            value,
            updated,
        } => tx
            .prepare_cached(
                "INSERT INTO user_metadata (username, entry, value, updated)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![username, entry, value, updated])?,
        Row::Attribute {
            username,
            key,
            value,
            updated,
        } => tx
            .prepare_cached(
                "INSERT INTO dict_attributes (username, key, value, updated)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![username, key, value, updated])?,
        Row::Secret {
            name,
            value,
            created,
        } => tx
            .prepare_cached(
                "INSERT INTO server_secrets (name, value, created) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![name, value, created])?,
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
        } => tx
            .prepare_cached(
                "INSERT INTO push_subscriptions (username, id, client, device, msgtype,
                        endpoint, p256dh, auth, created, validation, validated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
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
                validated_at
            ])?,
        Row::Token {
            username,
            id,
            token,
            created,
            updated,
        } => tx
            .prepare_cached(
                "INSERT INTO deltachat_tokens (username, id, token, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![username, id, token, created, updated])?,
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
        } => tx
            .prepare_cached(
                "INSERT INTO push_queue (kind, username, target, payload, with_content,
                        validation, attempts, not_before, deadline, created, dedupe)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
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
                dedupe
            ])?,
    };
    Ok(())
}
