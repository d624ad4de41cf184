//! `coid push list|delete|test|vapid`: a user's Web Push subscriptions (the ones COI
//! clients store with IMAP SETMETADATA), a test push sent at once with each outcome
//! printed, and the server's VAPID public key (what clients read as `webpush/vapid`).

use std::path::Path;
use std::time::Duration;

use clap::Subcommand;

use super::build::{load_config, load_vapid, push_sender};
use super::exit;
use crate::config::Config;
use crate::dict::webpush::listing;
use crate::push::outcome::Outcome;
use crate::push::sender::{Options, Target, Urgency};
use crate::push::subscription::{decode_auth, decode_p256dh};
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

type CliResult = Result<(), (u8, String)>;

/// Runs a `coid push` command.
pub fn run(config_path: &Path, action: PushAction) -> u8 {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let store = match Store::open(&config.database_path()) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("coid: {err}");
            return exit::TEMPFAIL;
        }
    };
    let users = UserMap::new(&config.users);
    let user = |address: &str| users.resolve(address).username;
    let result = match action {
        PushAction::List { address } => list(&store, &config, &user(&address)),
        PushAction::Delete { address, id } => delete(&store, &user(&address), &id),
        PushAction::Test { address } => test(&store, &config, &user(&address)),
        PushAction::Vapid => load_vapid(&store)
            .map(|key| print!("{}", key.public_pem()))
            .map_err(|code| (code, "no VAPID key".into())),
    };
    match result {
        Ok(()) => exit::OK,
        Err((code, message)) => {
            eprintln!("coid: {message}");
            code
        }
    }
}

fn temp(err: impl std::fmt::Display) -> (u8, String) {
    (exit::TEMPFAIL, err.to_string())
}

/// The user's subscriptions, after deleting those left unvalidated too long.
fn subscriptions(
    store: &Store,
    config: &Config,
    user: &str,
) -> Result<Vec<Subscription>, (u8, String)> {
    let window = i64::try_from(config.push.subscription_expire_secs).unwrap_or(i64::MAX);
    store
        .expire_subscriptions(Some(user), (unix_now_ms() / 1000).saturating_sub(window))
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
    let sender = push_sender(
        config,
        load_vapid(store).map_err(|c| (c, "no VAPID key".into()))?,
    )
    .map_err(|c| (c, "no push sender".into()))?;
    let options = Options {
        ttl: Duration::from_secs(config.push.ttl_secs),
        urgency: Urgency::parse(&config.push.urgency).unwrap_or(Urgency::Normal),
        topic: None,
        validation: false,
    };
    let payload = serde_json::json!({ "folder": "INBOX", "subject": "coid push test" }).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (exit::SOFTWARE, e.to_string()))?;
    let mut worst = exit::OK;
    for sub in validated {
        let Some(target) = target(&sub) else {
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

fn target(sub: &Subscription) -> Option<Target> {
    Some(Target {
        endpoint: url::Url::parse(&sub.endpoint).ok()?,
        p256dh: decode_p256dh(&sub.p256dh)?,
        auth: decode_auth(&sub.auth)?,
    })
}

/// The exit code an outcome stands for: 75 try again later, 65 refused.
fn code_of(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Delivered => exit::OK,
        Outcome::Temporary | Outcome::RateLimited { .. } => exit::TEMPFAIL,
        _ => exit::DATAERR,
    }
}
