//! The envelope of one LMTP transaction: sender, MAIL parameters that matter downstream,
//! and the accepted recipients in RCPT order (RFC 2033 §4.2 replies follow that order).

/// Sender and recipients of one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Reverse-path without angle brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// `BODY=8BITMIME` was given (RFC 6152).
    pub body_8bit: bool,
    /// `SMTPUTF8` was given (RFC 6531).
    pub smtputf8: bool,
    /// `SIZE=` as declared by the client (RFC 1870), if any.
    pub declared_size: Option<u64>,
    /// Accepted recipients, in RCPT order.
    pub recipients: Vec<Recipient>,
}

/// One accepted `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Forward-path without angle brackets, as the client gave it.
    pub address: String,
    /// `ORCPT=` (RFC 3461), kept only to log it.
    pub orcpt: Option<String>,
}

impl Recipient {
    /// A recipient with no ORCPT.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            orcpt: None,
        }
    }
}
