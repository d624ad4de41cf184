//! From TOML text to [`Config`] with every value that does not fit its key reported,
//! not only the first. toml's deserializer stops at the first wrong value (an unknown
//! word for an enum, a string where a number goes, an unknown key), so after a failed
//! whole-file attempt each key is tried on its own: every key has a default, so a key
//! alone fits exactly when its own value does. Sections descend into their keys. The
//! config is then built from the keys that fit, with defaults for the others, so the
//! semantic checks ([`Config::validate`]) can still run over the rest in the same round.
//! Syntax errors stop at once: without a table there are no keys to try.

use std::path::Path;

use serde::Deserialize;
use toml::{Table, Value};

use super::{Config, ConfigError, Problems};

/// What parsing found: the config (defaults in place of values that do not fit) and
/// one problem per value that does not fit, each naming its key.
#[derive(Debug)]
pub struct Parsed {
    /// The config from the keys that fit.
    pub config: Config,
    /// `key.path: why` for each key that does not fit; empty when all fit.
    pub problems: Vec<String>,
}

impl Config {
    /// Reads, parses and validates a config file.
    ///
    /// # Errors
    /// Any problem; [`ConfigError::Invalid`] lists them all.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let (config, problems) = Self::check(&text, path)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(Problems(problems)))
        }
    }

    /// Parses TOML text (no validation).
    ///
    /// # Errors
    /// Syntax errors; every value that does not fit its key.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parsed = Self::parse_all(text, path)?;
        if parsed.problems.is_empty() {
            Ok(parsed.config)
        } else {
            Err(ConfigError::Invalid(Problems(parsed.problems)))
        }
    }

    /// Parses TOML text, keeping going past values that do not fit their keys: the
    /// config has defaults in their place, and each is a problem (how: the header of
    /// `config/read.rs`).
    ///
    /// # Errors
    /// Syntax errors only.
    pub fn parse_all(text: &str, path: &Path) -> Result<Parsed, ConfigError> {
        parse(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Parses and validates TOML text: the config (defaults in place of values that
    /// do not fit) and every problem, those of parsing and of [`Config::validate`].
    ///
    /// # Errors
    /// Syntax errors only.
    pub fn check(text: &str, path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let Parsed {
            config,
            mut problems,
        } = Self::parse_all(text, path)?;
        if let Err(invalid) = config.validate() {
            problems.extend(invalid.0);
        }
        Ok((config, problems))
    }
}

/// Parses `text`; `Err` only for TOML syntax errors.
fn parse(text: &str) -> Result<Parsed, toml::de::Error> {
    let table: Table = toml::from_str(text)?;
    if let Ok(config) = Config::deserialize(Value::Table(table.clone())) {
        return Ok(Parsed {
            config,
            problems: Vec::new(),
        });
    }
    let mut problems = Vec::new();
    let kept = fitting(&table, &[], &mut problems);
    let config = match Config::deserialize(Value::Table(kept)) {
        Ok(config) => config,
        // Keys that fit one by one fit together (no key depends on another); should
        // that ever change, say so rather than drop the rest silently.
        Err(err) => {
            problems.push(one_line(&format!(
                "the keys that fit do not fit together: {err}"
            )));
            Config::default()
        }
    };
    Ok(Parsed { config, problems })
}

/// The entries of `table` (found at `path`) that fit; a problem for each that does
/// not. A section that does not fit keeps the keys of it that do.
fn fitting(table: &Table, path: &[&str], problems: &mut Vec<String>) -> Table {
    let mut kept = Table::new();
    for (key, value) in table {
        let at = [path, &[key.as_str()]].concat();
        let Err(err) = fits(&at, value.clone()) else {
            kept.insert(key.clone(), value.clone());
            continue;
        };
        match value {
            // A section (an empty table fits there): descend, so each wrong key in it
            // is named on its own.
            Value::Table(inner) if fits(&at, Value::Table(Table::new())).is_ok() => {
                let before = problems.len();
                let inner = fitting(inner, &at, problems);
                if problems.len() == before {
                    problems.push(problem(&at, &err));
                }
                kept.insert(key.clone(), Value::Table(inner));
            }
            _ => problems.push(problem(&at, &err)),
        }
    }
    kept
}

/// Whether `value` alone at `path` (every other key at its default) makes a config.
fn fits(path: &[&str], value: Value) -> Result<(), toml::de::Error> {
    let nested = path.iter().rev().fold(value, |inner, key| {
        Value::Table(Table::from_iter([((*key).to_owned(), inner)]))
    });
    Config::deserialize(nested).map(drop)
}

/// `key.path: why` (serde's words: "unknown variant `x`, expected one of ..."), on
/// one line whatever the key and the value hold.
fn problem(path: &[&str], err: &toml::de::Error) -> String {
    one_line(&format!("{}: {}", path.join("."), err.message().trim_end()))
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): a problem is one
/// line on the terminal and in the journal, even when it quotes a key or a value that
/// held a line break or an escape sequence (found by fuzz/config).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wrong value or key that holds a line break or an escape is still named on
    /// one line (`fuzz/config` found one that split the problem list).
    #[test]
    fn problems_quoting_control_characters_stay_one_line() {
        let text = "[coi]\nmessage_filter = \"no\\ne\"\n[\"lm\\ntp\"]\nx = 1\n[push]\nurgency = \"\\u001b[31m\"\n";
        let parsed = parse(text).expect("syntax");
        assert_eq!(parsed.problems.len(), 3, "{:?}", parsed.problems);
        for problem in &parsed.problems {
            assert!(!problem.chars().any(char::is_control), "{problem:?}");
        }
        assert!(
            parsed.problems.iter().any(|p| p.contains("`no\\ne`")),
            "{:?}",
            parsed.problems
        );
    }

    #[test]
    fn a_config_that_fits_has_no_problems() {
        let parsed = parse("[lmtp]\nhostname = \"mx.example\"\n").expect("syntax");
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.config.lmtp.hostname, "mx.example");
    }

    #[test]
    fn each_wrong_value_is_named_and_the_rest_is_kept() {
        let text = "[lmtp]\nhostname = \"mx.example\"\nmax_connections = \"many\"\n\
                    max_recipients = -1\n[nope]\na = 1\n[delivery.dovecot]\nlhlo = 1\n\
                    lhlo_name = \"me\"\n";
        let parsed = parse(text).expect("syntax");
        let p = &parsed.problems;
        assert_eq!(p.len(), 4, "{p:?}");
        for key in [
            "lmtp.max_connections: ",
            "lmtp.max_recipients: ",
            "nope: ",
            "delivery.dovecot.lhlo: ",
        ] {
            assert!(p.iter().any(|m| m.starts_with(key)), "{key} in {p:?}");
        }
        assert_eq!(parsed.config.lmtp.hostname, "mx.example");
        assert_eq!(parsed.config.lmtp.max_connections, 64, "the default");
        assert_eq!(parsed.config.delivery.dovecot.lhlo_name, "me");
    }

    #[test]
    fn a_syntax_error_stops() {
        assert!(parse("[lmtp\n").is_err());
    }
}
