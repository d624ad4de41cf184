//! Value types of the config that are neither a word from a list (those are enums next
//! to their sections) nor plain text: socket modes, written as octal strings, and
//! `IP:port` addresses. Each deserializes from the text the config files have always
//! used, and refuses anything else with the value and what it should be, so nothing
//! is parsed again where it is used.

use std::net::SocketAddr;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, Unexpected};

/// A unix socket's permission bits; the config writes them as an octal string
/// (`"0660"`), at most `0777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SocketMode(u32);

impl SocketMode {
    /// `0660`: owner and group may connect.
    pub const DEFAULT: SocketMode = SocketMode(0o660);

    /// The permission bits.
    pub fn bits(self) -> u32 {
        self.0
    }
}

/// A socket mode that is not octal or above `0777`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an octal mode of at most 0777")]
pub struct BadSocketMode(String);

impl TryFrom<String> for SocketMode {
    type Error = BadSocketMode;

    fn try_from(text: String) -> Result<Self, BadSocketMode> {
        match u32::from_str_radix(&text, 8) {
            Ok(mode) if mode <= 0o777 => Ok(SocketMode(mode)),
            _ => Err(BadSocketMode(text)),
        }
    }
}

/// What an address must look like, for the error.
const IP_PORT: &str = "an IP:port address";

/// One `IP:port` address from its text.
fn address<E: serde::de::Error>(text: &str) -> Result<SocketAddr, E> {
    text.parse()
        .map_err(|_| E::invalid_value(Unexpected::Str(text), &IP_PORT))
}

/// `IP:port` addresses (`["127.0.0.1:2424"]`), for `deserialize_with`.
pub(super) fn addresses<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| address(text))
        .collect()
}

/// An `IP:port` address, or none for `""`, for `deserialize_with`.
pub(super) fn optional_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    let none = "an IP:port address or \"\" (none)";
    text.parse()
        .map(Some)
        .map_err(|_| D::Error::invalid_value(Unexpected::Str(&text), &none))
}
