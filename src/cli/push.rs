//! `coid push list|delete|test|vapid`: a user's Web Push subscriptions (the ones COI
//! clients store with IMAP SETMETADATA), a test push sent at once with each outcome
//! printed, and the server's VAPID public key (what clients read as `webpush/vapid`).

use std::path::Path;

use clap::Subcommand;

use super::build::{load_vapid, push_sender, with_store};
use super::{CliResult, exit, temp};
use crate::config::Config;
use crate::dict::webpush::listing;
use crate::push::outcome::Outcome;
use crate::push::queue::PushQueue;
use crate::push::sender::{Options, Target};
use crate::store::{Store, Subscription, unix_now_ms};
use crate::users::UserMap;

/// What to do.
#[derive(Debug, Subcommand)]
pub enum PushAction {
    /// Print a user's subscriptions, one JSON object per line (the IMAP listing plus
    /// "id" and "pending", the pushes waiting in the queue).
    List {
        /// The user's address.
        address: String,
    },
    /// Delete a user's subscription and its pending pushes.
    Delete {
        /// The user's address.
        address: String,
        /// The subscription id (as listed).
        id: String,
    },
    /// Send a test push now to each validated subscription of a user and print what
    /// each push service answered; a subscription the push service no longer knows
    /// (404/410) is deleted.
    Test {
        /// The user's address.
        address: String,
    },
    /// Print the server's VAPID public key (PEM), creating the key if there is none yet.
    Vapid,
}

/// Runs a `coid push` command.
pub fn run(config_path: &Path, action: PushAction) -> u8 {
    with_store(config_path, |config, store| {
        let users = UserMap::new(&config.users);
        let user = |address: &str| users.resolve(address).username;
        match action {
            PushAction::List { address } => list(store, config, &user(&address)),
            PushAction::Delete { address, id } => delete(store, &user(&address), &id),
            PushAction::Test { address } => test(store, config, &user(&address)),
            PushAction::Vapid => load_vapid(store).map(|key| print!("{}", key.public_pem())),
        }
    })
}

/// The user's subscriptions, after deleting those left unvalidated too long.
fn subscriptions(store: &Store, config: &Config, user: &str) -> CliResult<Vec<Subscription>> {
    PushQueue::new(store.clone(), &config.push)
        .expire_subscriptions(Some(user), unix_now_ms())
        .map_err(temp)?;
    store.subscriptions(user).map_err(temp)
}

fn list(store: &Store, config: &Config, user: &str) -> CliResult {
    for sub in subscriptions(store, config, user)? {
        let pending = store.pending_pushes(user, &sub.id).map_err(temp)?;
        let Some(listing) = listing(&sub) else {
            continue;
        };
        let id = serde_json::to_string(&sub.id).map_err(temp)?;
        let rest = listing.strip_prefix('{').unwrap_or(&listing);
        println!("{{\"id\":{id},\"pending\":{pending},{rest}");
    }
    Ok(())
}

fn delete(store: &Store, user: &str, id: &str) -> CliResult {
    match store.delete_subscription(user, id, None).map_err(temp)? {
        true => {
            println!("deleted {id}");
            Ok(())
        }
        false => Err((exit::DATAERR, format!("{user} has no subscription {id:?}"))),
    }
}

fn test(store: &Store, config: &Config, user: &str) -> CliResult {
    let validated: Vec<Subscription> = subscriptions(store, config, user)?
        .into_iter()
        .filter(|s| s.validated_at.is_some())
        .collect();
    if validated.is_empty() {
        return Err((
            exit::NOUSER,
            format!("{user} has no validated push subscription"),
        ));
    }
    let sender = push_sender(config, load_vapid(store)?)?;
    let options = Options::from_config(&config.push);
    let payload = serde_json::json!({ "folder": "INBOX", "subject": "coid push test" }).to_string();
    let runtime = super::build::runtime(tokio::runtime::Builder::new_current_thread())?;
    let mut worst = exit::OK;
    for sub in validated {
        let Some(target) = Target::decode(&sub.endpoint, &sub.p256dh, &sub.auth) else {
            println!("{}: stored keys or endpoint do not decode", sub.id);
            worst = worst.max(exit::DATAERR);
            continue;
        };
        match runtime.block_on(sender.send(&target, payload.as_bytes(), &options)) {
            Ok(attempt) => {
                println!(
                    "{}: {} ({})",
                    sub.id,
                    attempt.outcome.as_str(),
                    attempt.detail
                );
                worst = worst.max(code_of(attempt.outcome));
                if attempt.outcome == Outcome::Gone {
                    store
                        .delete_subscription(user, &sub.id, Some(&sub.endpoint))
                        .map_err(temp)?;
                    println!("{}: deleted (gone at the push service)", sub.id);
                }
            }
            Err(err) => {
                println!("{}: not sent: {err}", sub.id);
                worst = worst.max(exit::DATAERR);
            }
        }
    }
    match worst {
        exit::OK => Ok(()),
        code => Err((code, "not every test push was delivered".into())),
    }
}

/// The exit code an outcome stands for: 75 try again later, 65 refused.
fn code_of(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Delivered => exit::OK,
        Outcome::Temporary | Outcome::RateLimited { .. } => exit::TEMPFAIL,
        _ => exit::DATAERR,
    }
}
