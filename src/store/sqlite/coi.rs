//! The COI settings as SQLite reads them: the two entries in one query.

use rusqlite::params;

use super::{Sqlite, text_pair};
use crate::store::StoreError;
use crate::store::coi::{ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, MessageFilter, StoredCoi};

impl Sqlite {
    /// What `username` set of the COI settings. A stored value that is not valid
    /// (written by hand) is ignored with a warning.
    ///
    /// # Errors
    /// SQLite failed.
    pub(super) fn stored_coi(&self, username: &str) -> Result<StoredCoi, StoreError> {
        let mut stored = StoredCoi::default();
        // Exactly the two settings, in one query: a user's other METADATA (also other
        // entries below `coi/config/`) may be many.
        let conn = self.lock()?;
        let mut stmt = conn.prepare_cached(
            "SELECT entry, value FROM user_metadata WHERE username = ?1 AND entry IN (?2, ?3)",
        )?;
        let rows = stmt.query_map(
            params![username, ENTRY_ENABLED, ENTRY_MESSAGE_FILTER],
            text_pair,
        )?;
        for row in rows {
            let (entry, value) = row?;
            match entry.as_str() {
                ENTRY_ENABLED => stored.enabled = Some(value == "yes"),
                ENTRY_MESSAGE_FILTER => match MessageFilter::parse(&value) {
                    Some(filter) => stored.message_filter = Some(filter),
                    None => tracing::warn!(username, value, "ignoring invalid message-filter"),
                },
                _ => {}
            }
        }
        Ok(stored)
    }
}
