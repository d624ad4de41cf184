//! The label values of coid's metrics: one small enum per label, so every time series
//! is known in advance and nothing from mail (addresses, folders, reply text) ever
//! becomes a label. Each enum writes a fixed snake_case value (`EncodeLabelValue` by
//! hand: the derive would write the Rust variant name). The code that records maps its
//! own types to these values, next to those types; this module imports none of them.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// Defines a label enum with its fixed label values and their encoding.
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $value:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant,)+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}

label_enum! {
    /// Which listener a session came in on.
    Proto {
        /// LMTP from Postfix.
        Lmtp => "lmtp",
        /// Dovecot's dict proxy.
        Dict => "dict",
    }
}

label_enum! {
    /// A message's class (`crate::classify::Class`), or `unknown` when coid could not
    /// decide it (spool or state store trouble: every recipient was deferred).
    MessageClass {
        /// One-to-one chat.
        Chat => "chat",
        /// Group chat.
        Group => "group",
        /// Read receipt (RFC 8098).
        Mdn => "mdn",
        /// Plain email.
        Email => "email",
        /// Not classified.
        Unknown => "unknown",
    }
}

label_enum! {
    /// What one recipient's reply after DATA said (RFC 5321 §4.2.1 reply classes).
    DeliveryOutcome {
        /// 2xx.
        Delivered => "delivered",
        /// 4xx: the MTA retries.
        Deferred => "deferred",
        /// 5xx.
        Rejected => "rejected",
    }
}

label_enum! {
    /// Why a delivery backend (Dovecot LMTP or Maildir) failed.
    BackendError {
        /// Dovecot LMTP: could not connect (refused, no socket, unreachable).
        Connect => "connect",
        /// Dovecot LMTP: no connection or reply within the timeout.
        Timeout => "timeout",
        /// Dovecot LMTP: a reply coid could not parse, or an unexpected code.
        Protocol => "protocol",
        /// Read/write or file system failure, or the peer closed the connection.
        Io => "io",
        /// Maildir: another process held a dotlock too long.
        Locked => "locked",
        /// Maildir: a recipient name that would leave the mail tree (5xx).
        Refused => "refused",
        /// Maildir: a blocking file task died.
        Task => "task",
    }
}

label_enum! {
    /// What became of a push: an attempt's answer ([`Outcome`], RFC 8030 §5/§8.4), an
    /// attempt that never reached a push service, or a push that left the queue unsent.
    PushOutcome {
        /// 2xx.
        Delivered => "delivered",
        /// 404/410: the subscription was deleted.
        Gone => "gone",
        /// 413: resent once without content.
        TooLarge => "too_large",
        /// 429: the endpoint is held back.
        RateLimited => "rate_limited",
        /// 5xx, 408, timeout or no answer: retried with backoff.
        Temporary => "temporary",
        /// 401/403: VAPID refused; dropped.
        Unauthorized => "unauthorized",
        /// 3xx: never followed; dropped.
        Redirected => "redirected",
        /// Any other answer; dropped.
        Rejected => "rejected",
        /// The stored subscription's keys do not decode; dropped unsent.
        Undecodable => "undecodable",
        /// The endpoint breaks the endpoint rules (e.g. a private address); dropped.
        EndpointRefused => "endpoint_refused",
        /// Encryption or request building failed; dropped.
        BuildFailed => "build_failed",
        /// Deleted by the sweep, past its deadline (`[push] deadline_secs`).
        Expired => "expired",
        /// Never queued: the queue was full (`[push] max_queue`).
        QueueFull => "queue_full",
    }
}

label_enum! {
    /// How a dict transaction commit ended.
    DictCommit {
        /// Stored.
        Ok => "ok",
        /// Refused by coid's rules or limits (a bad COI value, too many changes...).
        Refused => "refused",
        /// The state store failed.
        Failed => "failed",
    }
}

label_enum! {
    /// How a reload (SIGHUP) ended.
    ReloadResult {
        /// The new configuration is in use.
        Ok => "ok",
        /// It was refused; the old one stays.
        Failed => "failed",
    }
}

label_enum! {
    /// What became of a Delta Chat notification: the notification proxy's answer, an
    /// attempt that never reached it, or a notification that left the queue unsent.
    DeltaChatOutcome {
        /// 2xx: delivered (or debounced) by the proxy.
        Delivered => "delivered",
        /// 410: the token is dead; it was deleted.
        Gone => "gone",
        /// 429: every notification waits.
        RateLimited => "rate_limited",
        /// 5xx, 408, timeout or no answer: retried with backoff.
        Temporary => "temporary",
        /// Any other answer; dropped.
        Rejected => "rejected",
        /// 3xx: never followed; dropped.
        Redirected => "redirected",
        /// `notify_url` breaks the endpoint rules; dropped.
        EndpointRefused => "endpoint_refused",
        /// Deleted by the sweep, past its deadline (`[deltachat] deadline_secs`).
        Expired => "expired",
        /// Never queued: the queue was full (`[push] max_queue`).
        QueueFull => "queue_full",
    }
}
