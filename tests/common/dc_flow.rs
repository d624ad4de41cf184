//! The whole Delta Chat push picture for a test: Postfix → coid → Dovecot with coid's
//! shipped METADATA snippet (dict proxy; `COI WEBPUSH XDELTAPUSH`), coid notifying the
//! stand-in notification proxy ([`super::notify_proxy`]) with small backoffs, Dovecot's
//! `/shared/admin` and `/shared/comment` set as the snippet's commented lines show, and the
//! Delta Chat client's side over raw IMAP: the server-entry GETMETADATA and the device
//! token SETMETADATA exactly as Delta Chat core sends them. Plus what the tests read
//! back: `coid push list`, coid's metrics, the token ids.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use super::metadata::{Entry, metadata, socket_dir};
use super::metrics::{sample, scrape, wait_samples};
use super::notify_proxy::{NotifyProxy, Request};
use super::stack::{COID_METADATA_CONF, DELIVERY_WAIT, Stack, dovecot_opts, with_coid_metadata};
use super::{Imap, MessageBuilder};

/// Where Delta Chat stores its device token (in INBOX or on the server).
pub const DEVICETOKEN: &str = "/private/devicetoken";

/// The server entries Delta Chat core reads after login (`update_metadata`), in its
/// order; the command it sends is [`DELTACHAT_GETMETADATA`].
pub const SERVER_ENTRIES: [&str; 6] = [
    "/shared/comment",
    "/shared/admin",
    "/shared/vendor/deltachat/irohrelay",
    "/shared/vendor/deltachat/turn",
    "/shared/vendor/deltachat/maxsmtprecipients",
    "/shared/vendor/deltachat/appversions",
];

/// Delta Chat core's GETMETADATA, byte for byte (async-imap quotes the mailbox).
pub const DELTACHAT_GETMETADATA: &str = "GETMETADATA \"\" (/shared/comment /shared/admin \
     /shared/vendor/deltachat/irohrelay /shared/vendor/deltachat/turn \
     /shared/vendor/deltachat/maxsmtprecipients /shared/vendor/deltachat/appversions)";

/// `[deltachat] irohrelay` in the tests.
pub const IROH_RELAY: &str = "https://iroh.example.org/";

/// How long a notification may take to reach the stand-in (covers a few backoffs of
/// at most 2 s, and the 11 s lease of a notification whose sender was killed).
pub const NOTIFY_WAIT: Duration = Duration::from_secs(15);

/// Dovecot's setting behind `/shared/admin` (Dovecot answers it, never the dict).
pub const ADMIN: &str = "mail_server_admin";
/// Dovecot's setting behind `/shared/comment`.
pub const COMMENT: &str = "mail_server_comment";

/// The example value of Dovecot setting `name` in the shipped METADATA snippet, where
/// it is a commented line (`#name = value`) for the admin to take over.
pub fn snippet_example(name: &str) -> String {
    let prefix = format!("#{name} = ");
    let line = COID_METADATA_CONF
        .lines()
        .find_map(|l| l.strip_prefix(&prefix));
    let line = line.unwrap_or_else(|| panic!("no `{prefix}...` line in 91-coid-metadata.conf"));
    line.trim().to_owned()
}

/// `coid_deltachat_notifications_total{outcome="<outcome>"}`.
pub fn outcome(outcome: &str) -> String {
    format!("coid_deltachat_notifications_total{{outcome=\"{outcome}\"}}")
}
/// The Delta Chat part of coid's push queue.
pub const QUEUE_DEPTH: &str = r#"coid_push_queue_depth{kind="deltachat"}"#;
/// Tokens stored, all users.
pub const TOKENS: &str = "coid_deltachat_tokens";

/// Stack and stand-in.
pub struct DcFlow {
    pub stack: Stack,
    pub proxy: NotifyProxy,
    _dir: TempDir,
}

impl DcFlow {
    /// Starts the stand-in (answering 200), then the stack; `deltachat_toml` is added
    /// to coid's `[deltachat]` section.
    pub fn start(deltachat_toml: &str) -> DcFlow {
        let proxy = NotifyProxy::start();
        let (dir, socket) = socket_dir();
        let mut dovecot = with_coid_metadata(dovecot_opts("/"), &socket);
        for name in [ADMIN, COMMENT] {
            let value = snippet_example(name);
            dovecot.extra_conf.push_str(&format!("{name} = {value}\n"));
        }
        let stack = Stack::start(dovecot, |_, opts| {
            opts.dict_socket = Some(socket.clone());
            opts.extra_toml = coid_toml(&proxy.url(), deltachat_toml);
        });
        DcFlow {
            stack,
            proxy,
            _dir: dir,
        }
    }

    /// [`DcFlow::start`] with a token registered for alice; and the token.
    pub fn with_token() -> (DcFlow, String) {
        let flow = DcFlow::start("");
        let token = device_token();
        flow.register("alice", &token);
        (flow, token)
    }

    /// `user` (`alice`) logged in over IMAP.
    pub fn imap(&self, user: &str) -> Imap {
        self.stack.dovecot.imap(user)
    }

    /// Registers `token` for `user` as Delta Chat core does (quoted, in INBOX); must
    /// succeed.
    pub fn register(&self, user: &str, token: &str) {
        let (status, text, _) = metadata(&mut self.imap(user), &setmetadata_quoted(token));
        assert_eq!(status, "OK", "registering a token for {user}: {text}");
    }

    /// The Delta Chat tokens `coid push list` shows for `address`.
    pub fn tokens(&self, address: &str) -> Vec<Value> {
        let (code, out, err) = self.stack.coid.cli(&["push", "list", address], None);
        assert_eq!(code, 0, "coid push list {address}: {out}{err}");
        let all = out.lines().map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("coid push list: {e}: {line:?}"))
        });
        all.filter(|v| v["kind"] == "deltachat").collect()
    }

    /// The ids of `address`'s listed tokens, sorted.
    pub fn token_ids(&self, address: &str) -> Vec<String> {
        let tokens = self.tokens(address);
        let mut ids: Vec<String> = tokens
            .iter()
            .map(|t| {
                t["id"]
                    .as_str()
                    .expect("a listed token has an id")
                    .to_owned()
            })
            .collect();
        ids.sort();
        ids
    }

    /// Sends `message` from `from` to `rcpts` through Postfix; waits until every
    /// recipient's store has it; returns its Message-ID.
    pub fn deliver(&self, from: &str, rcpts: &[&str], message: &MessageBuilder) -> String {
        let id = self.stack.send(from, rcpts, message);
        for rcpt in rcpts {
            self.stack
                .dovecot
                .wait_for_message(rcpt, &id, DELIVERY_WAIT);
        }
        id
    }

    /// A plain mail from bob@example.net to `rcpts`, delivered.
    pub fn mail(&self, rcpts: &[&str]) -> String {
        let message = MessageBuilder::new().from("Bob <bob@example.net>");
        self.deliver("bob@example.net", rcpts, &message)
    }

    /// Waits until at least `n` POSTs reached the stand-in.
    pub fn wait_posts(&self, n: usize) -> Vec<Request> {
        let what = format!("{n} POSTs to the notification stand-in");
        let all = self.proxy.wait_for(&what, NOTIFY_WAIT, |r| {
            r.iter().filter(|r| r.method == "POST").count() >= n
        });
        all.into_iter().filter(|r| r.method == "POST").collect()
    }

    /// Waits until coid's metrics show exactly these values, and nothing of Delta
    /// Chat queued: after that coid sends nothing more on its own.
    pub fn wait_settled(&self, expected: &[(&str, f64)]) {
        let mut all = expected.to_vec();
        all.push((QUEUE_DEPTH, 0.0));
        wait_samples(self.stack.coid.metrics_addr(), &all, NOTIFY_WAIT);
    }

    /// The value of `series` now.
    pub fn metric(&self, series: &str) -> Option<f64> {
        sample(&scrape(self.stack.coid.metrics_addr()), series)
    }
}

/// coid's extra config: loopback allowed, the stand-in, small backoffs, and the
/// `irohrelay` server entry the tests read back. The short timeouts also keep the lease short
/// (twice the longer timeout plus 5 s: 11 s) after which a notification that was in
/// flight when coid died is sent again.
fn coid_toml(url: &str, deltachat_toml: &str) -> String {
    format!(
        "[push]\nallow_private_endpoints = true\ntimeout_secs = 1\n\
         [deltachat]\nnotify_url = \"{url}\"\nirohrelay = \"{IROH_RELAY}\"\n\
         backoff_first_secs = 1\nbackoff_max_secs = 2\nrate_limit_secs = 1\ntimeout_secs = 3\n\
         {deltachat_toml}\n"
    )
}

/// Delta Chat core's registration: `SETMETADATA "INBOX" (/private/devicetoken "<token>")`.
pub fn setmetadata_quoted(token: &str) -> String {
    format!("SETMETADATA \"INBOX\" ({DEVICETOKEN} \"{token}\")")
}

/// The same with a LITERAL+ literal (`{N+}`), as older cores and other clients send it;
/// `token` may hold any bytes but NUL.
pub fn setmetadata_literal(mailbox: &str, token: &str) -> String {
    format!(
        "SETMETADATA \"{mailbox}\" ({DEVICETOKEN} {{{}+}}\r\n{token})",
        token.len()
    )
}

/// A token shaped like Delta Chat's: `openpgp:` and the base64 of an OpenPGP message
/// (random bytes here, 656 of them: core pads the device token to 512 bytes before
/// encrypting it, so a real one is about 870 characters).
pub fn device_token() -> String {
    use base64ct::{Base64, Encoding};
    let mut bytes = [0u8; 656];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    format!("openpgp:{}", Base64::encode_string(&bytes))
}

/// A token's id: the first 16 hex digits of its SHA-256.
pub fn token_id(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The ids of `tokens`, sorted.
pub fn sorted_ids(tokens: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = tokens.iter().map(|t| token_id(t)).collect();
    ids.sort();
    ids
}

/// A METADATA command that must be answered `want` (`OK`, `NO`).
pub fn expect_status(imap: &mut Imap, command: &str, want: &str) {
    let (status, text, _) = metadata(imap, command);
    let shown: String = command.chars().take(120).collect();
    assert_eq!(status, want, "{shown:?}: {text}");
}

/// `tokens`, sorted.
pub fn sorted_tokens(tokens: &[&String]) -> Vec<String> {
    let mut tokens: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    tokens.sort();
    tokens
}

/// The bodies of `posts` as text, sorted.
pub fn sorted_bodies(posts: &[Request]) -> Vec<String> {
    let mut bodies: Vec<String> = posts
        .iter()
        .map(|p| String::from_utf8_lossy(&p.body).into_owned())
        .collect();
    bodies.sort();
    bodies
}

/// `user`'s value of each entry (as listed; absent entries are not listed).
pub fn value_of<'a>(entries: &'a [Entry], entry: &str) -> Option<&'a Option<String>> {
    entries
        .iter()
        .find(|(name, _)| name == entry)
        .map(|(_, v)| v)
}

/// coid's `server entry read` log lines for `entry` (a METADATA entry name), from a
/// log without colours ([`super::coid::Coid::plain_log`]).
pub fn server_entry_reads(log: &str, entry: &str) -> Vec<String> {
    let reads = log
        .lines()
        .filter(|line| line.contains("server entry read") && has_field(line, "entry", entry));
    reads.map(str::to_owned).collect()
}

/// Whether a log line has the field `name` with `value`, as tracing writes it
/// (`name=value`, or quoted for a string recorded with Debug).
pub fn has_field(line: &str, name: &str, value: &str) -> bool {
    let bare = format!("{name}={value}");
    let quoted = format!("{name}=\"{value}\"");
    let ends = |at: usize| {
        let rest = &line[at + bare.len()..];
        rest.is_empty() || rest.starts_with([' ', '}', ','])
    };
    line.match_indices(&bare).any(|(at, _)| ends(at)) || line.contains(&quoted)
}
