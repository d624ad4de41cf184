//! `coid push list|delete|test|vapid`: a user's push targets — the Web Push
//! subscriptions COI clients store with IMAP SETMETADATA and the Delta Chat device
//! tokens Delta Chat clients set — one test push to each, sent at once with each
//! outcome printed, and the server's VAPID public key (what clients read as
//! `webpush/vapid`). Tokens are shown shortened, never whole.

use std::path::Path;

use clap::Subcommand;

use super::build::{failed, with_store};
use super::{CliResult, exit, temp};
use crate::app::build::{load_vapid, notifier, push_sender};
use crate::config::Config;
use crate::dict::webpush::listing;
use crate::push::deltachat::token::shortened;
use crate::push::outcome::{Attempt, Outcome};
use crate::push::queue::PushQueue;
use crate::push::webpush::sender::{Options, Target};
use crate::push::webpush::subscription::rfc3339;
use crate::store::{DeviceToken, PushKind, Store, Subscription, unix_now_ms};
use crate::users::UserMap;

/// What to do.
#[derive(Debug, Subcommand)]
pub enum PushAction {
    /// Print a user's push targets, one JSON object per line: Web Push subscriptions
    /// (the IMAP listing plus "kind", "id" and "pending", the pushes waiting in the
    /// queue) and Delta Chat tokens ("kind", "id", the token shortened, when it was
    /// last set, "pending").
    List {
        /// The user's address.
        address: String,
    },
    /// Delete a user's subscription or Delta Chat token (by id, as listed) and its
    /// pending pushes.
    Delete {
        /// The user's address.
        address: String,
        /// The subscription or token id (as listed).
        id: String,
    },
    /// Send a test push now to each validated subscription and each Delta Chat token
    /// of a user and print what each service answered; a target the service no longer
    /// knows is deleted.
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
            PushAction::Vapid => load_vapid(store)
                .map(|key| print!("{}", key.public_pem()))
                .map_err(failed),
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

/// The user's tokens within their lifetime.
fn tokens(store: &Store, config: &Config, user: &str) -> CliResult<Vec<DeviceToken>> {
    let lifetime = config.deltachat.token_expire_days.saturating_mul(86_400);
    let since = (unix_now_ms() / 1000).saturating_sub(i64::try_from(lifetime).unwrap_or(i64::MAX));
    store.tokens(user, since).map_err(temp)
}

fn list(store: &Store, config: &Config, user: &str) -> CliResult {
    for sub in subscriptions(store, config, user)? {
        let pending = store
            .pending_pushes(PushKind::WebPush, user, &sub.id)
            .map_err(temp)?;
        let Some(listing) = listing(&sub) else {
            continue;
        };
        let id = serde_json::to_string(&sub.id).map_err(temp)?;
        let rest = listing.strip_prefix('{').unwrap_or(&listing);
        println!("{{\"kind\":\"webpush\",\"id\":{id},\"pending\":{pending},{rest}");
    }
    for token in tokens(store, config, user)? {
        let pending = store
            .pending_pushes(PushKind::DeltaChat, user, &token.id)
            .map_err(temp)?;
        let line = serde_json::json!({
            "kind": "deltachat",
            "id": token.id,
            "token": shortened(&token.token),
            "updated": rfc3339(token.updated),
            "created": rfc3339(token.created),
            "pending": pending,
        });
        println!("{line}");
    }
    Ok(())
}

fn delete(store: &Store, user: &str, id: &str) -> CliResult {
    let deleted = store.delete_subscription(user, id, None).map_err(temp)?
        || store.delete_token(user, id).map_err(temp)?;
    if deleted {
        println!("deleted {id}");
        Ok(())
    } else {
        Err((
            exit::DATAERR,
            format!("{user} has no subscription or token {id:?}"),
        ))
    }
}

fn test(store: &Store, config: &Config, user: &str) -> CliResult {
    let validated: Vec<Subscription> = subscriptions(store, config, user)?
        .into_iter()
        .filter(|s| s.validated_at.is_some())
        .collect();
    let tokens = tokens(store, config, user)?;
    if validated.is_empty() && tokens.is_empty() {
        return Err((
            exit::NOUSER,
            format!("{user} has no validated push subscription and no Delta Chat token"),
        ));
    }
    let runtime = super::build::runtime(tokio::runtime::Builder::new_current_thread())?;
    let mut worst = exit::OK;
    if !validated.is_empty() {
        let sender = push_sender(config, load_vapid(store).map_err(failed)?).map_err(failed)?;
        let options = Options::from_config(&config.push);
        let payload =
            serde_json::json!({ "folder": "INBOX", "subject": "coid push test" }).to_string();
        for sub in validated {
            let Some(target) = Target::decode(&sub.endpoint, &sub.p256dh, &sub.auth) else {
                println!("{}: stored keys or endpoint do not decode", sub.id);
                worst = worst.max(exit::DATAERR);
                continue;
            };
            let sent = runtime.block_on(sender.send(&target, payload.as_bytes(), &options));
            let (code, outcome) = report(&sub.id, sent.map_err(|e| e.to_string()));
            worst = worst.max(code);
            if outcome == Some(Outcome::Gone) {
                store
                    .delete_subscription(user, &sub.id, Some(&sub.endpoint))
                    .map_err(temp)?;
                println!("{}: deleted (gone at the push service)", sub.id);
            }
        }
    }
    if !tokens.is_empty() {
        let notifier = notifier(config).map_err(failed)?;
        for token in tokens {
            let sent = runtime.block_on(notifier.notify(&token.token));
            let (code, outcome) = report(&token.id, sent.map_err(|e| e.to_string()));
            worst = worst.max(code);
            if outcome == Some(Outcome::Gone) {
                store.delete_token(user, &token.id).map_err(temp)?;
                println!("{}: deleted (gone at the notification service)", token.id);
            }
        }
    }
    match worst {
        exit::OK => Ok(()),
        code => Err((code, "not every test push was delivered".into())),
    }
}

/// Prints one target's result; returns the exit code it stands for and the outcome.
fn report(id: &str, sent: Result<Attempt, String>) -> (u8, Option<Outcome>) {
    match sent {
        Ok(attempt) => {
            println!("{id}: {} ({})", attempt.outcome.as_str(), attempt.detail);
            (code_of(attempt.outcome), Some(attempt.outcome))
        }
        Err(err) => {
            println!("{id}: not sent: {err}");
            (exit::DATAERR, None)
        }
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
