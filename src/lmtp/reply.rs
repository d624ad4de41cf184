//! Every reply coid sends on its LMTP listener (RFC 2033, RFC 5321 §4.2) as a typed value,
//! with the RFC 3463 enhanced status code kept apart from the text.
//!
//! Wire texts stay generic: the reason behind a reply goes to the log, not to the client
//! (a 451 never says which backend or path failed).

use std::borrow::Cow;
use std::fmt;

/// One SMTP/LMTP reply line: `code enhanced text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Basic status code (RFC 5321 §4.2).
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. `[5, 1, 1]`.
    pub enhanced: [u16; 3],
    /// Human readable text; never contains CR or LF.
    pub text: Cow<'static, str>,
}

impl Reply {
    /// A reply with static text.
    pub const fn new(code: u16, enhanced: [u16; 3], text: &'static str) -> Self {
        Self {
            code,
            enhanced,
            text: Cow::Borrowed(text),
        }
    }

    /// A reply with text built at run time; CR and LF are replaced so the text
    /// can never end the reply line early.
    pub fn dynamic(code: u16, enhanced: [u16; 3], text: &str) -> Self {
        let clean: String = text
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .take(400)
            .collect();
        Self {
            code,
            enhanced,
            text: Cow::Owned(clean),
        }
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx: the client keeps the message and retries.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: a final verdict.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the reply line, CRLF terminated, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    pub const READY: Reply = Reply::new(220, [0, 0, 0], "coid LMTP ready");
    pub const OK: Reply = Reply::new(250, [2, 0, 0], "OK");
    pub const SENDER_OK: Reply = Reply::new(250, [2, 1, 0], "Sender OK");
    pub const RECIPIENT_OK: Reply = Reply::new(250, [2, 1, 5], "Recipient OK");
    pub const RESET: Reply = Reply::new(250, [2, 0, 0], "Reset");
    pub const DISCARDED: Reply = Reply::new(250, [2, 0, 0], "Discarded by policy");
    pub const BYE: Reply = Reply::new(221, [2, 0, 0], "Bye");
    pub const START_DATA: Reply = Reply::new(354, [0, 0, 0], "End data with <CR><LF>.<CR><LF>");
    pub const SHUTTING_DOWN: Reply = Reply::new(421, [4, 3, 2], "Service shutting down");
    pub const IDLE_TIMEOUT: Reply = Reply::new(421, [4, 4, 2], "Idle timeout, closing connection");
    pub const TEMP_FAILURE: Reply =
        Reply::new(451, [4, 3, 0], "Temporary failure, try again later");
    pub const STORE_UNAVAILABLE: Reply =
        Reply::new(451, [4, 4, 1], "Mail store unavailable, try again later");
    pub const TOO_MANY_RECIPIENTS: Reply = Reply::new(452, [4, 5, 3], "Too many recipients");
    pub const UNKNOWN_COMMAND: Reply = Reply::new(500, [5, 5, 1], "Unknown command");
    pub const LINE_TOO_LONG: Reply = Reply::new(500, [5, 5, 2], "Line too long");
    pub const SYNTAX_ERROR: Reply = Reply::new(501, [5, 5, 4], "Syntax error");
    pub const BAD_SENDER: Reply = Reply::new(501, [5, 1, 7], "Bad sender address syntax");
    pub const BAD_RECIPIENT: Reply = Reply::new(501, [5, 1, 3], "Bad recipient address syntax");
    pub const UNSUPPORTED_PARAMETER: Reply =
        Reply::new(555, [5, 5, 4], "Unsupported MAIL or RCPT parameter");
    pub const NOT_IMPLEMENTED: Reply = Reply::new(502, [5, 5, 1], "Command not implemented");
    pub const USE_LHLO: Reply = Reply::new(500, [5, 5, 1], "This is LMTP: use LHLO (RFC 2033)");
    pub const NEED_LHLO: Reply = Reply::new(503, [5, 5, 1], "Send LHLO first");
    pub const NEED_MAIL: Reply = Reply::new(503, [5, 5, 1], "Send MAIL first");
    pub const NESTED_MAIL: Reply = Reply::new(503, [5, 5, 1], "Sender already given");
    pub const NEED_RCPT: Reply = Reply::new(503, [5, 5, 1], "No valid recipients");
    pub const MESSAGE_TOO_BIG: Reply = Reply::new(552, [5, 3, 4], "Message too big for system");
    /// RFC 6531 §3.7.4.1: a non-ASCII address the next hop cannot take.
    pub const UTF8_ADDRESS_UNSUPPORTED: Reply = Reply::new(
        553,
        [5, 6, 7],
        "Non-ASCII address, but the mail store does not support SMTPUTF8",
    );
    pub const REJECTED_BY_POLICY: Reply = Reply::new(550, [5, 7, 1], "Rejected by policy");
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced == [0, 0, 0] {
            write!(f, "{} {}", self.code, self.text)
        } else {
            let [a, b, c] = self.enhanced;
            write!(f, "{} {a}.{b}.{c} {}", self.code, self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_enhanced_code() {
        assert_eq!(
            Reply::MESSAGE_TOO_BIG.to_string(),
            "552 5.3.4 Message too big for system"
        );
        assert_eq!(
            Reply::START_DATA.to_string(),
            "354 End data with <CR><LF>.<CR><LF>"
        );
    }

    #[test]
    fn dynamic_text_cannot_inject_lines() {
        let r = Reply::dynamic(550, [5, 7, 1], "no\r\n250 OK");
        let mut out = Vec::new();
        r.write_to(&mut out);
        assert_eq!(out, b"550 5.7.1 no  250 OK\r\n");
    }
}
