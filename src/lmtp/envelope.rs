//! The envelope of one LMTP transaction: sender, MAIL parameters that matter downstream,
//! and the accepted recipients in RCPT order (RFC 2033 §4.2 replies follow that order).
//!
//! [`PerRcpt`] is how anything per recipient travels after DATA (decisions, outcomes,
//! replies): it is built only from an envelope's recipients and only mapped one to one
//! afterwards, so "exactly one reply per accepted recipient, in RCPT order" holds by
//! construction instead of being checked and patched where the replies are written.

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

impl Envelope {
    /// One value per accepted recipient, in RCPT order.
    pub fn per_rcpt<T>(&self, mut f: impl FnMut(usize, &Recipient) -> T) -> PerRcpt<T> {
        PerRcpt(
            self.recipients
                .iter()
                .enumerate()
                .map(|(i, r)| f(i, r))
                .collect(),
        )
    }
}

/// Exactly one value per accepted recipient of an envelope, in RCPT order. There is
/// no way to add, drop or reorder values: it is made by [`Envelope::per_rcpt`] and
/// changed only by one-to-one maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerRcpt<T>(Vec<T>);

impl<T> PerRcpt<T> {
    /// Each value mapped, in order.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PerRcpt<U> {
        PerRcpt(self.0.into_iter().map(f).collect())
    }

    /// Each value mapped by reference, with its recipient index.
    pub fn map_ref<U>(&self, mut f: impl FnMut(usize, &T) -> U) -> PerRcpt<U> {
        PerRcpt(self.0.iter().enumerate().map(|(i, v)| f(i, v)).collect())
    }

    /// The values, in RCPT order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// The values as a slice, in RCPT order.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// How many recipients.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the envelope had no recipient.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> IntoIterator for PerRcpt<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a PerRcpt<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
