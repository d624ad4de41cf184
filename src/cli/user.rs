//! `coid user get|set`: the COI settings of one user in the state store, the same
//! entries IMAP METADATA writes through Dovecot's dict proxy (`crate::dict`).

use std::path::Path;

use clap::Subcommand;

use super::build::with_store;
use super::{CliResult, exit, temp};
use crate::store::{
    CoiSettings, ENTRY_ENABLED, ENTRY_MAILBOX_ROOT, ENTRY_MESSAGE_FILTER, Store, check_entry_write,
};
use crate::users::UserMap;

/// What to do with a user.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Print the user's effective COI settings (and which are defaults).
    Get {
        /// The user's address (an extension like +tag is ignored).
        address: String,
    },
    /// Change settings: enabled=yes|nil, message-filter=none|active|seen|nil, the
    /// values IMAP SETMETADATA takes (nil removes the user's value, so the server
    /// default applies).
    Set {
        /// The user's address.
        address: String,
        /// key=value pairs.
        #[arg(required = true, num_args = 1..)]
        settings: Vec<String>,
    },
}

/// Runs a `coid user` command.
pub fn run(config_path: &Path, action: UserAction) -> u8 {
    with_store(config_path, |config, store| {
        let users = UserMap::new(&config.users);
        match action {
            UserAction::Get { address } => {
                let defaults = CoiSettings::defaults(&config.coi);
                get(store, &users.resolve(&address).username, &defaults)
            }
            UserAction::Set { address, settings } => {
                set(store, &users.resolve(&address).username, &settings)
            }
        }
    })
}

fn get(store: &Store, username: &str, defaults: &CoiSettings) -> CliResult {
    let settings = store.coi_settings(username, defaults).map_err(temp)?;
    let stored = |entry| store.get(username, entry).map_err(temp);
    let origin = |v: Option<String>| if v.is_some() { "" } else { " (default)" };
    println!("user={username}");
    println!(
        "enabled={}{}",
        if settings.enabled { "yes" } else { "no" },
        origin(stored(ENTRY_ENABLED)?)
    );
    println!(
        "message-filter={}{}",
        settings.message_filter.as_str(),
        origin(stored(ENTRY_MESSAGE_FILTER)?)
    );
    println!("mailbox-root={} (server)", settings.mailbox_root);
    Ok(())
}

fn set(store: &Store, username: &str, pairs: &[String]) -> CliResult {
    let mut changes = Vec::new();
    for pair in pairs {
        changes.push(parse_setting(pair).map_err(|m| (exit::USAGE, m))?);
    }
    for (entry, value) in changes {
        store.set(username, entry, value.as_deref()).map_err(temp)?;
    }
    Ok(())
}

/// `key=value` → (METADATA entry, value or None for nil). The value must pass the
/// rules a SETMETADATA through Dovecot's dict proxy passes, with the same error text
/// ([`check_entry_write`]): `enabled` takes only `yes` (or nil), so "no" is refused
/// rather than stored as a value no client would write.
fn parse_setting(pair: &str) -> Result<(&'static str, Option<String>), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
    let entry = match key {
        "enabled" => ENTRY_ENABLED,
        "message-filter" => ENTRY_MESSAGE_FILTER,
        "mailbox-root" => ENTRY_MAILBOX_ROOT,
        _ => return Err(format!("unknown setting {key:?} (enabled, message-filter)")),
    };
    let value = (!value.eq_ignore_ascii_case("nil")).then(|| value.to_owned());
    check_entry_write(entry, value.as_deref())?;
    Ok((entry, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same rules and words as a SETMETADATA through the dict proxy.
    #[test]
    fn values_follow_the_metadata_rules() {
        for (pair, entry, value) in [
            ("enabled=no", ENTRY_ENABLED, Some("no")),
            ("enabled=true", ENTRY_ENABLED, Some("true")),
            (
                "message-filter=sometimes",
                ENTRY_MESSAGE_FILTER,
                Some("sometimes"),
            ),
            ("mailbox-root=X", ENTRY_MAILBOX_ROOT, Some("X")),
        ] {
            let metadata = check_entry_write(entry, value).expect_err("refused over IMAP");
            assert_eq!(parse_setting(pair), Err(metadata), "{pair}");
        }
    }

    #[test]
    fn parses_settings() {
        assert_eq!(
            parse_setting("enabled=yes"),
            Ok((ENTRY_ENABLED, Some("yes".into())))
        );
        assert_eq!(
            parse_setting("message-filter=nil"),
            Ok((ENTRY_MESSAGE_FILTER, None))
        );
        assert_eq!(parse_setting("enabled=NIL"), Ok((ENTRY_ENABLED, None)));
        assert!(parse_setting("message-filter=sometimes").is_err());
        assert!(parse_setting("mailbox-root=X").is_err());
        assert!(parse_setting("colour=red").is_err());
        assert!(parse_setting("enabled").is_err());
    }
}
