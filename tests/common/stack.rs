//! The whole host picture for a test: real Dovecot with coid's shipped Sieve "before"
//! script and settings (`conf.d/dovecot/`), coid delivering to Dovecot's LMTP socket,
//! and real Postfix delivering to coid; and sending mail in at the Postfix end.

use std::time::Duration;

use super::coid::{Coid, CoidOpts};
use super::{
    Dovecot, DovecotOpts, MessageBuilder, Postfix, PostfixOpts, SieveScript, StoredMessage,
};

/// How long a message may take from Postfix to the store.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(20);

/// coid's Pigeonhole before-script, as shipped.
pub const COID_SIEVE: &str = include_str!("../../conf.d/dovecot/coid.sieve");

/// coid's Dovecot snippet for IMAP METADATA through coid's dict proxy, as shipped.
pub const COID_METADATA_CONF: &str = include_str!("../../conf.d/dovecot/91-coid-metadata.conf");

/// `opts` plus the shipped METADATA snippet, pointed at coid's dict socket `socket`
/// (its `mail_attribute_dict` comes after, and so overrides, the harness's own).
pub fn with_coid_metadata(mut opts: DovecotOpts, socket: &std::path::Path) -> DovecotOpts {
    let snippet = COID_METADATA_CONF.replace("/run/coid/dict", &socket.display().to_string());
    opts.extra_conf.push_str(&snippet);
    opts
}

/// Dovecot set up the way `conf.d/dovecot/90-coid.conf` sets it up.
pub fn dovecot_opts(separator: &str) -> DovecotOpts {
    DovecotOpts {
        separator: separator.to_owned(),
        sieve_before: Some(SieveScript::Inline(COID_SIEVE.to_owned())),
        sieve_global_extensions: Some("+editheader".to_owned()),
        lda_mailbox_autosubscribe: true,
        ..DovecotOpts::default()
    }
}

/// Postfix → coid → Dovecot.
pub struct Stack {
    /// Postfix (dropped first).
    pub postfix: Postfix,
    /// coid.
    pub coid: Coid,
    /// Dovecot.
    pub dovecot: Dovecot,
}

impl Stack {
    /// Starts Dovecot, then coid (configured by `tweak`), then Postfix.
    pub fn start(dovecot: DovecotOpts, tweak: impl FnOnce(&Dovecot, &mut CoidOpts)) -> Stack {
        Stack::start_with(Dovecot::start(dovecot), tweak)
    }

    /// Like [`Stack::start`] with an already running Dovecot.
    pub fn start_with(dovecot: Dovecot, tweak: impl FnOnce(&Dovecot, &mut CoidOpts)) -> Stack {
        Stack::start_full(dovecot, tweak, |_, _| {})
    }

    /// Like [`Stack::start_with`], with Postfix's options (next hop: coid's TCP
    /// listener) changed by `postfix_tweak`.
    pub fn start_full(
        dovecot: Dovecot,
        tweak: impl FnOnce(&Dovecot, &mut CoidOpts),
        postfix_tweak: impl FnOnce(&Coid, &mut PostfixOpts),
    ) -> Stack {
        let mut opts = CoidOpts::dovecot(&dovecot.lmtp_socket().display().to_string());
        opts.separator = dovecot.separator().to_owned();
        tweak(&dovecot, &mut opts);
        let coid = Coid::start(opts);
        let mut postfix_opts = PostfixOpts::new(&coid.transport_inet());
        postfix_tweak(&coid, &mut postfix_opts);
        Stack {
            postfix: Postfix::start(postfix_opts),
            coid,
            dovecot,
        }
    }

    /// Submits `message` from `from` to `rcpts` through Postfix, which must accept it;
    /// returns its Message-ID.
    pub fn send(&self, from: &str, rcpts: &[&str], message: &MessageBuilder) -> String {
        super::send_smtp(self.postfix.smtp_port(), from, rcpts, &message.build())
            .expect("Postfix accepts the message");
        message.id()
    }

    /// Sends `message` from `from` to `rcpt` through Postfix and waits until `rcpt`'s
    /// store has it.
    pub fn send_and_wait(&self, from: &str, rcpt: &str, message: &MessageBuilder) -> StoredMessage {
        let id = self.send(from, &[rcpt], message);
        self.dovecot.wait_for_message(rcpt, &id, DELIVERY_WAIT)
    }
}
