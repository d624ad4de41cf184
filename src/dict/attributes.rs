//! Dovecot's attribute dictionary on top of coid's state store: answers the session's
//! lookups, iterations and commits with protocol replies. Blocking (SQLite): the
//! connection calls it through `spawn_blocking`.
//!
//! Keys are placed by `super::keys`. On top of plain storage it keeps the COI rules
//! (coi-spec.md §2.3, §2.4, §2.6): `mailbox-root` is virtual (the value of
//! `[coi] mailbox_root`, returned on lookup and listed when its parent is iterated)
//! and read-only, `enabled` takes only `yes`, `message-filter` only `none`, `active`
//! or `seen`; a refused change fails its whole commit and nothing of it is stored.
//! Usernames are normalised like recipients (`crate::users`), so IMAP and delivery
//! name a user the same way.

use super::keys::{Place, ServerScope, place};
use super::protocol::{IterFlags, Reply};
use super::session::Change;
use crate::config::{CoiConfig, UsersConfig};
use crate::store::{ENTRY_MAILBOX_ROOT, Store, Table, Write, check_entry_write};
use crate::users::UserMap;

/// What a failure of coid's own looks like on the wire; the detail goes to coid's log.
const STORE_FAILED: &str = "coid state store error (see coid's log)";

/// The attribute dictionary.
pub struct Attributes {
    store: Store,
    users: UserMap,
    mailbox_root: String,
}

impl Attributes {
    /// Over `store`, with the users and COI settings of the config.
    pub fn new(store: Store, users: &UsersConfig, coi: &CoiConfig) -> Attributes {
        Attributes {
            store,
            users: UserMap::new(users),
            mailbox_root: coi.mailbox_root.clone(),
        }
    }

    fn user(&self, username: &str) -> String {
        self.users.resolve(username).username
    }

    /// `L`: `O<value>` or `N`; `F` if the store failed.
    pub fn lookup(&self, username: &str, key: &str) -> Reply {
        let user = self.user(username);
        let found = match place(key) {
            Place::Entry(entry) if entry == ENTRY_MAILBOX_ROOT => {
                Ok(Some(self.mailbox_root.clone()))
            }
            Place::Entry(entry) => self.store.lookup(Table::Metadata, &user, &entry),
            Place::Raw => self.store.lookup(Table::Attributes, &user, key),
        };
        match found {
            Ok(Some(value)) => Reply::Value(value),
            Ok(None) => Reply::NotFound,
            Err(err) => {
                tracing::error!(error = %err, user, key, "dict lookup failed");
                Reply::Failed(STORE_FAILED.into())
            }
        }
    }

    /// `I`: the rows below `path`, sorted, at most `limit`, then the end marker; or one
    /// `F` if the store failed.
    pub fn iterate(
        &self,
        username: &str,
        path: &str,
        flags: IterFlags,
        limit: usize,
    ) -> Vec<Reply> {
        let user = self.user(username);
        let mut rows = match self.rows(&user, path, flags, limit.saturating_add(1)) {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, user, path, "dict iteration failed");
                return vec![Reply::Failed(STORE_FAILED.into())];
            }
        };
        if flags.sort_by_value() {
            rows.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        } else {
            rows.sort();
        }
        rows.dedup_by(|a, b| a.0 == b.0);
        if rows.len() > limit {
            tracing::warn!(
                user,
                path,
                limit,
                "dict iteration cut at dict.max_iterate_rows"
            );
            rows.truncate(limit);
        }
        let no_value = flags.no_value();
        let mut replies: Vec<Reply> = rows
            .into_iter()
            .map(|(key, value)| Reply::Row {
                key,
                value: (!no_value).then_some(value),
            })
            .collect();
        replies.push(Reply::EndOfRows);
        replies
    }

    /// Every matching row from both tables (and the virtual `mailbox-root`), unsorted.
    fn rows(
        &self,
        user: &str,
        path: &str,
        flags: IterFlags,
        limit: usize,
    ) -> Result<Vec<(String, String)>, crate::store::StoreError> {
        let depth = flags.depth();
        let mut rows = self
            .store
            .scan(Table::Attributes, user, path, depth, limit)?;
        let Some(scope) = ServerScope::of(path) else {
            return Ok(rows);
        };
        let entries = self
            .store
            .scan(Table::Metadata, user, &scope.entry_prefix, depth, limit)?;
        rows.extend(entries.into_iter().filter_map(|(entry, value)| {
            let key = scope.key_for(&entry)?;
            (entry != ENTRY_MAILBOX_ROOT).then_some((key, value))
        }));
        if let Some(key) = scope.key_for(ENTRY_MAILBOX_ROOT)
            && depth.matches(path, &key)
        {
            rows.push((key, self.mailbox_root.clone()));
        }
        Ok(rows)
    }

    /// `C`: checks every change, then applies all of them in one SQLite transaction.
    pub fn commit(&self, id: u32, async_: bool, username: &str, changes: &[Change]) -> Reply {
        let user = self.user(username);
        let failed = |error: String| Reply::CommitFailed {
            id: Some(id),
            async_,
            error,
        };
        let mut writes = Vec::with_capacity(changes.len());
        for change in changes {
            let (table, key) = match place(&change.key) {
                Place::Entry(entry) => {
                    if let Err(refusal) = check_entry_write(&entry, change.value.as_deref()) {
                        tracing::info!(user, refusal, "dict commit refused");
                        return failed(refusal);
                    }
                    (Table::Metadata, entry)
                }
                Place::Raw => (Table::Attributes, change.key.clone()),
            };
            writes.push(Write {
                table,
                key,
                value: change.value.clone(),
            });
        }
        match self.store.apply(&user, &writes) {
            Ok(()) => {
                tracing::debug!(user, id, changes = writes.len(), "dict commit stored");
                Reply::Committed { id, async_ }
            }
            Err(err) => {
                tracing::error!(error = %err, user, id, "dict commit failed");
                failed(STORE_FAILED.into())
            }
        }
    }
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
