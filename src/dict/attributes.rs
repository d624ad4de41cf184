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
//! name a user the same way. The WebPush entries are `super::webpush`'s; without it
//! (`[push] enabled = false`) they read as NIL and writes to them are refused. Delta
//! Chat's device token and the server entries coid answers are `super::deltachat`'s.
//!
//! A user who never set `enabled` or `message-filter` reads the server default
//! (`[coi] enabled`, `[coi] message_filter`): the value delivery uses for them, so a
//! client sees what the server does. `enabled` off reads NIL, as the spec has no `no`.

use super::deltachat::DeltaChatEntries;
use super::keys::{Place, ServerScope, place, shared_server_scope};
use super::protocol::{IterFlags, Reply};
use super::session::Change;
use super::webpush::{self, WebPush};
use crate::config::{CoiConfig, UsersConfig};
use crate::metrics::{DictCommit, Recorder};
use crate::store::{
    CommitError, ENTRY_ENABLED, ENTRY_MAILBOX_ROOT, ENTRY_MESSAGE_FILTER, Op, Store, Table, Write,
    check_entry_write, unix_now_ms,
};
use crate::users::UserMap;

/// What a failure of coid's own looks like on the wire; the detail goes to coid's log.
const STORE_FAILED: &str = "coid state store error (see coid's log)";

/// The COI entries a user without their own value reads (coi-spec.md §2.3): `enabled`
/// is `yes` or absent (NIL), `message-filter` the configured default.
fn coi_defaults(coi: &CoiConfig) -> Vec<(&'static str, String)> {
    let mut out = vec![(ENTRY_MESSAGE_FILTER, coi.message_filter.as_str().to_owned())];
    if coi.enabled {
        out.push((ENTRY_ENABLED, "yes".to_owned()));
    }
    out
}

/// The attribute dictionary.
pub struct Attributes {
    store: Store,
    users: UserMap,
    mailbox_root: String,
    /// What a user without a value of their own reads: `[coi]`'s defaults.
    defaults: Vec<(&'static str, String)>,
    webpush: Option<WebPush>,
    deltachat: DeltaChatEntries,
    recorder: Recorder,
}

impl Attributes {
    /// Over `store`, with the users and COI settings of the config (and Delta Chat's
    /// entries at their defaults: see [`Attributes::with_deltachat`]).
    pub fn new(store: Store, users: &UsersConfig, coi: &CoiConfig) -> Attributes {
        Attributes {
            store,
            users: UserMap::new(users),
            mailbox_root: coi.mailbox_root.clone(),
            defaults: coi_defaults(coi),
            webpush: None,
            recorder: Recorder::off(),
            deltachat: DeltaChatEntries::new(&crate::config::Config::default()),
        }
    }

    /// Counts commits in `recorder`.
    pub fn with_recorder(mut self, recorder: Recorder) -> Attributes {
        self.recorder = recorder;
        self
    }

    /// Where commits are counted.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Serves Delta Chat's entries as `deltachat` says.
    pub fn with_deltachat(mut self, deltachat: DeltaChatEntries) -> Attributes {
        self.deltachat = deltachat;
        self
    }

    /// Serves the WebPush entries through `webpush`.
    pub fn with_webpush(mut self, webpush: WebPush) -> Attributes {
        self.webpush = Some(webpush);
        self
    }

    /// `[coi]`'s default for `entry`, for a user without a value of their own.
    fn default(&self, entry: &str) -> Option<String> {
        self.defaults
            .iter()
            .find(|(name, _)| *name == entry)
            .map(|(_, value)| value.clone())
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
            Place::Entry(entry) => match (webpush::Entry::parse(&entry), &self.webpush) {
                (Some(name), Some(webpush)) => webpush.lookup(&user, name),
                (Some(_), None) => Ok(None),
                (None, _) => self
                    .store
                    .lookup(Table::Metadata, &user, &entry)
                    .map(|value| value.or_else(|| self.default(&entry))),
            },
            Place::DeviceToken => Ok(None),
            Place::ServerInfo(entry) => Ok(self.deltachat.server_entry(&entry)),
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
        if let Some((base, entry_prefix)) = shared_server_scope(path) {
            rows.extend(self.deltachat.server_rows(&base, &entry_prefix, depth));
        }
        let Some(scope) = ServerScope::of(path) else {
            return Ok(rows);
        };
        let entries = self
            .store
            .scan(Table::Metadata, user, &scope.entry_prefix, depth, limit)?;
        for (entry, value) in &self.defaults {
            if let Some(key) = scope.key_for(entry)
                && depth.matches(path, &key)
                && !entries.iter().any(|(own, _)| own == entry)
            {
                rows.push((key, value.clone()));
            }
        }
        rows.extend(entries.into_iter().filter_map(|(entry, value)| {
            let key = scope.key_for(&entry)?;
            (entry != ENTRY_MAILBOX_ROOT).then_some((key, value))
        }));
        if let Some(webpush) = &self.webpush {
            let entries = webpush.rows(user, &scope.entry_prefix, depth)?;
            rows.extend(
                entries
                    .into_iter()
                    .filter_map(|(entry, value)| Some((scope.key_for(&entry)?, value))),
            );
        }
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
        let now = unix_now_ms();
        let mut ops = Vec::with_capacity(changes.len());
        for change in changes {
            match self.plan(&user, change, now) {
                Ok(op) => ops.push(op),
                Err(refusal) => {
                    tracing::info!(user, refusal, "dict commit refused");
                    self.recorder.dict_commit(DictCommit::Refused);
                    return failed(refusal);
                }
            }
        }
        match self.store.commit(&user, &ops, now) {
            Ok(()) => {
                tracing::debug!(user, id, changes = ops.len(), "dict commit stored");
                for op in &ops {
                    match op {
                        Op::AddToken { id: token, .. } => {
                            tracing::debug!(user, token, "deltachat token set");
                        }
                        Op::RemoveTokens => tracing::info!(user, "deltachat tokens removed"),
                        _ => {}
                    }
                }
                if ops.iter().any(|op| matches!(op, Op::Subscribe(_)))
                    && let Some(webpush) = &self.webpush
                {
                    webpush.wake();
                }
                self.recorder.dict_commit(DictCommit::Ok);
                Reply::Committed { id, async_ }
            }
            Err(CommitError::Refused(refusal)) => {
                tracing::info!(user, refusal, "dict commit refused");
                self.recorder.dict_commit(DictCommit::Refused);
                failed(refusal)
            }
            Err(CommitError::Store(err)) => {
                tracing::error!(error = %err, user, id, "dict commit failed");
                self.recorder.dict_commit(DictCommit::Failed);
                failed(STORE_FAILED.into())
            }
        }
    }

    /// One change as a store operation, or why it is refused. Writes nothing (a
    /// commit applies the operations); public for the fuzz targets (`fuzz/`).
    pub fn plan(&self, user: &str, change: &Change, now: i64) -> Result<Op, String> {
        let value = change.value.as_deref();
        let entry = match place(&change.key) {
            Place::Entry(entry) => entry,
            Place::DeviceToken => return self.deltachat.plan_token(value),
            Place::ServerInfo(entry) => {
                return Err(format!(
                    "{entry} is read-only (set by the server's coid.toml)"
                ));
            }
            Place::Raw => {
                return Ok(Op::Put(Write {
                    table: Table::Attributes,
                    key: change.key.clone(),
                    value: change.value.clone(),
                }));
            }
        };
        if let Some(name) = webpush::Entry::parse(&entry) {
            return match &self.webpush {
                Some(webpush) => webpush.plan(user, name, value, now),
                None => Err(format!("web push is not enabled on this server: {entry}")),
            };
        }
        check_entry_write(&entry, value)?;
        Ok(Op::Put(Write {
            table: Table::Metadata,
            key: entry,
            value: change.value.clone(),
        }))
    }
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "webpush_tests.rs"]
mod webpush_tests;
