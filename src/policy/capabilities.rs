//! Compile-time refusal of Sieve features coid cannot carry out.
//!
//! sieve-rs compiles any RFC extension it knows; coid only acts on keep, fileinto,
//! flags, discard and reject. This scans the script's tokens (skipping strings,
//! `text:` blocks and comments), checks every `require`d capability against an
//! allow-list, and refuses the core `redirect` command, which needs no `require`.
//!
//! The policy sees the header section only, at every message size: the body of a
//! large message lives in a spool file and is never held in memory, so a test on
//! the body (RFC 5173 `body`, RFC 5703 `mime`, `foreverypart`, `extracttext`) or on
//! the size (RFC 5228 §5.9 `size`, which would measure the header section) would
//! give a different answer for the same mail depending on its size. They are refused
//! here with [`HEADER_ONLY`]'s reason; `[lmtp] max_message_size` bounds sizes.

/// Extensions a policy script may `require`.
pub const ALLOWED: &[&str] = &[
    "fileinto",
    "mailbox",
    "imap4flags",
    "variables",
    "envelope",
    "environment",
    "relational",
    "regex",
    "subaddress",
    "reject",
    "ereject",
    "copy",
    "date",
    "index",
    "encoded-character",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
];

/// Extensions that read the body: refused, with [`HEADER_ONLY`].
pub const BODY_EXTENSIONS: &[&str] = &["body", "mime", "foreverypart", "extracttext"];

/// Why a body or size test is refused.
pub const HEADER_ONLY: &str = "the policy sees the header section only, whatever the \
    message's size (large bodies are spooled, never held in memory); use header, \
    address, envelope and environment tests";

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Other,
}

/// Every feature the script uses that coid refuses, as messages.
pub fn refused(script: &str) -> Vec<String> {
    let tokens = tokenize(script);
    let mut problems = Vec::new();
    let mut in_require = false;
    for token in &tokens {
        match token {
            Token::Word(w) if w.eq_ignore_ascii_case("require") => in_require = true,
            Token::Word(w) if w.eq_ignore_ascii_case("redirect") => {
                problems.push("\"redirect\" is not supported by coid (it only stores mail)".into());
            }
            Token::Word(w) if w.eq_ignore_ascii_case("size") => {
                problems.push(format!(
                    "the \"size\" test is not supported by coid: {HEADER_ONLY}"
                ));
            }
            Token::Str(cap)
                if in_require && BODY_EXTENSIONS.contains(&cap.to_ascii_lowercase().as_str()) =>
            {
                problems.push(format!(
                    "extension {cap:?} is not supported by coid: {HEADER_ONLY}"
                ));
            }
            Token::Str(cap)
                if in_require && !ALLOWED.contains(&cap.to_ascii_lowercase().as_str()) =>
            {
                problems.push(format!("extension {cap:?} is not supported by coid"));
            }
            Token::Other => in_require = false,
            _ => {}
        }
    }
    problems
}

/// Splits a script into words, strings and other punctuation. Good enough for
/// `require` lists and command names; sieve-rs does the real parsing.
fn tokenize(script: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = script.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '#' => skip_until(&mut chars, "\n", script, start),
            '/' if script.get(start..).is_some_and(|s| s.starts_with("/*")) => {
                skip_until(&mut chars, "*/", script, start)
            }
            '"' => tokens.push(Token::Str(quoted(&mut chars))),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&(_, n)) = chars.peek() {
                    if !(n.is_ascii_alphanumeric() || n == '_' || n == ':') {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                if word.eq_ignore_ascii_case("text:") {
                    skip_until(&mut chars, "\n.\n", script, start);
                    tokens.push(Token::Str(String::new()));
                } else {
                    tokens.push(Token::Word(word));
                }
            }
            '[' | ']' | ',' => {}
            c if c.is_whitespace() => {}
            _ => tokens.push(Token::Other),
        }
    }
    tokens
}

fn quoted(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> String {
    let mut out = String::new();
    while let Some((_, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

fn skip_until(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    end: &str,
    script: &str,
    from: usize,
) {
    let normalized_end = end.replace('\n', "\r\n");
    let rest = script.get(from + 1..).unwrap_or_default();
    let stop = rest
        .find(end)
        .map(|p| p + end.len())
        .or_else(|| rest.find(&normalized_end).map(|p| p + normalized_end.len()))
        .map_or(script.len(), |p| from + 1 + p);
    while chars.peek().is_some_and(|&(i, _)| i < stop) {
        chars.next();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_accepted() {
        assert_eq!(refused(crate::policy::DEFAULT_SCRIPT), Vec::<String>::new());
    }

    #[test]
    fn refuses_unsupported_requires_and_redirect() {
        let script =
            "require [\"fileinto\", \"vacation\"];\nrequire \"enotify\";\nredirect \"x@y\";";
        let problems = refused(script);
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn refuses_body_and_size_tests_with_the_reason() {
        for script in [
            "require \"body\";\nif body :contains \"x\" { discard; }",
            "require [\"mime\", \"foreverypart\"];",
            "require \"extracttext\";",
            "if size :over 100K { discard; }",
        ] {
            let problems = refused(script);
            assert!(!problems.is_empty(), "{script}");
            assert!(
                problems.iter().all(|p| p.contains("header section only")),
                "{problems:?}"
            );
        }
        assert!(refused("if header :contains \"x-size\" \"size\" { keep; }").is_empty());
    }

    #[test]
    fn ignores_words_in_strings_and_comments() {
        let script = "# redirect here\n/* vacation redirect */\nif header :contains \"subject\" \"redirect\" { keep; }\nrequire \"fileinto\";";
        assert!(refused(script).is_empty());
        let text = "require \"variables\";\nset \"x\" text:\nredirect\n.\n;\n";
        assert!(refused(text).is_empty());
    }
}
