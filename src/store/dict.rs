//! The state store as Dovecot's attribute dictionary sees it (through `crate::dict`):
//! point lookups, prefix scans with the dict's depth rules, and a batch of writes
//! applied in one store transaction, so a commit is all or nothing.
//!
//! Two tables answer: [`Table::Metadata`] holds users' METADATA entries by entry name
//! (`/private/...`, the same rows `coid user` and the delivery path use) and
//! [`Table::Attributes`] holds every other dict key verbatim. Which key goes where is
//! decided by `crate::dict::keys`, not here.

/// Which table a key lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `user_metadata`: METADATA entry names (`/private/vendor/...`).
    Metadata,
    /// `dict_attributes`: raw dict keys (`priv/<guid>/comment`, `shared/...`).
    Attributes,
}

impl Table {
    /// (SQL table, key column). Constants only: never built from input.
    pub(super) fn sql(self) -> (&'static str, &'static str) {
        match self {
            Table::Metadata => ("user_metadata", "entry"),
            Table::Attributes => ("dict_attributes", "key"),
        }
    }
}

/// Which keys below a prefix a scan returns (the dict iteration flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Only the key equal to the prefix.
    Exact,
    /// Keys with no further `/` after the prefix.
    Children,
    /// Every key that starts with the prefix.
    All,
}

impl Depth {
    /// The depth as a number, for SQL.
    pub(super) fn code(self) -> i64 {
        match self {
            Depth::Exact => 0,
            Depth::Children => 1,
            Depth::All => 2,
        }
    }

    /// The same rule in Rust, for keys that do not come from SQLite.
    pub fn matches(self, prefix: &str, key: &str) -> bool {
        let Some(rest) = key.strip_prefix(prefix) else {
            return false;
        };
        match self {
            Depth::Exact => rest.is_empty(),
            Depth::Children => !rest.contains('/'),
            Depth::All => true,
        }
    }
}

/// One change of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Where the key lives.
    pub table: Table,
    /// Entry name or raw key.
    pub key: String,
    /// The new value; `None` removes the key.
    pub value: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_stores::{Kind, store_of};
    use rstest::rstest;

    fn write(table: Table, key: &str, value: Option<&str>) -> Write {
        Write {
            table,
            key: key.into(),
            value: value.map(str::to_owned),
        }
    }

    #[rstest]
    #[case::sqlite(Kind::Sqlite)]
    #[case::postgresql(Kind::Postgresql)]
    fn scan_follows_the_depth_rules(#[case] kind: Kind) {
        let (_guard, store) = store_of(kind);
        let keys = ["p/a", "p/b/c", "p/b/c/d", "p", "q/a", "p%/x"];
        let writes: Vec<Write> = keys
            .iter()
            .map(|k| write(Table::Attributes, k, Some("v")))
            .collect();
        store.apply("u", &writes).expect("apply");
        store
            .apply("other", &[write(Table::Attributes, "p/z", Some("v"))])
            .expect("apply");
        let scan = |prefix, depth, limit| -> Vec<String> {
            store
                .scan(Table::Attributes, "u", prefix, depth, limit)
                .expect("scan")
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        assert_eq!(scan("p/", Depth::All, 10), ["p/a", "p/b/c", "p/b/c/d"]);
        assert_eq!(scan("p/", Depth::Children, 10), ["p/a"]);
        assert_eq!(scan("p/b/c", Depth::Exact, 10), ["p/b/c"]);
        assert_eq!(scan("p/", Depth::All, 2), ["p/a", "p/b/c"]);
        assert_eq!(scan("p%", Depth::All, 10), ["p%/x"]);
        assert!(scan("p//", Depth::All, 10).is_empty());
    }
}
