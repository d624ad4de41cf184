//! `coid user get|set`: the COI settings of one user in the state store, the same
//! entries IMAP METADATA writes through Dovecot's dict proxy (`crate::dict`).

use std::path::Path;

use clap::Subcommand;

use super::build::with_store;
use super::{CliResult, exit, temp};
use crate::store::{CoiSettings, ENTRY_ENABLED, ENTRY_MESSAGE_FILTER, MessageFilter, Store};
use crate::users::UserMap;

/// What to do with a user.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Print the user's effective COI settings (and which are defaults).
    Get {
        /// The user's address (an extension like +tag is ignored).
        address: String,
    },
    /// Change settings: enabled=yes|no|nil, message-filter=none|active|seen|nil
    /// (nil removes the user's value, so the server default applies).
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

/// `key=value` → (METADATA entry, value or None for nil).
fn parse_setting(pair: &str) -> Result<(&'static str, Option<String>), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
    let nil = value.eq_ignore_ascii_case("nil");
    match key {
        "enabled" => match value {
            "yes" | "no" => Ok((ENTRY_ENABLED, Some(value.to_owned()))),
            _ if nil => Ok((ENTRY_ENABLED, None)),
            _ => Err(format!("enabled: {value:?} is not yes, no or nil")),
        },
        "message-filter" => match MessageFilter::parse(value) {
            Some(f) => Ok((ENTRY_MESSAGE_FILTER, Some(f.as_str().to_owned()))),
            None if nil => Ok((ENTRY_MESSAGE_FILTER, None)),
            None => Err(format!(
                "message-filter: {value:?} is not none, active, seen or nil"
            )),
        },
        "mailbox-root" => {
            Err("mailbox-root is server-wide: set coi.mailbox_root in the config".into())
        }
        _ => Err(format!("unknown setting {key:?} (enabled, message-filter)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(parse_setting("message-filter=sometimes").is_err());
        assert!(parse_setting("mailbox-root=X").is_err());
        assert!(parse_setting("enabled").is_err());
    }
}
