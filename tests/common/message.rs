//! Build simple RFC 5322 test messages with CRLF line endings.
//!
//! Every message gets a unique Message-ID, so tests can find it again over IMAP
//! (and count its copies) in mailboxes shared with other messages. Header order
//! is kept as given; setting a standard header again replaces it,
//! [`MessageBuilder::header`] always appends. Also the COI chat shapes the tests
//! send: a chat ([`MessageBuilder::chat`]), a chat read receipt, a chat Message-ID;
//! and the captured Delta Chat messages ([`deltachat_fixture`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A Message-ID (with angle brackets) unique across threads and processes.
pub fn unique_message_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("<coid-test.{}.{nanos}.{n}@example.net>", std::process::id())
}

/// A unique Message-ID in the COI chat form (`<chat$...>`).
pub fn chat_message_id() -> String {
    unique_message_id().replace("<coid-test", "<chat$coid-test")
}

/// The messages a real Delta Chat client sent, kept byte for byte (see
/// `tests/deltachat/README.md`).
pub const DELTACHAT_FIXTURES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/eml/deltachat");

/// The fixture `name` under [`DELTACHAT_FIXTURES`].
pub fn deltachat_fixture(name: &str) -> Vec<u8> {
    let path = format!("{DELTACHAT_FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Content-Type of an RFC 8098 read receipt.
const MDN_TYPE: &str = "multipart/report; report-type=disposition-notification; boundary=\"b1\"";
/// Its body: a human-readable part and the disposition.
const MDN_BODY: &str = "--b1\r\nContent-Type: text/plain\r\n\r\nread\r\n\
     --b1\r\nContent-Type: message/disposition-notification\r\n\r\n\
     Disposition: manual-action/MDN-sent-manually; displayed\r\n--b1--\r\n";

/// Builder for a single-part text message.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    headers: Vec<(String, String)>,
    body: String,
}

impl Default for MessageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageBuilder {
    /// From `sender@example.net`, To `alice@example.org`, a subject, the
    /// current Date, a unique Message-ID and a one-line body.
    pub fn new() -> Self {
        MessageBuilder {
            headers: Vec::new(),
            body: "Hello from coid's tests.\r\n".to_owned(),
        }
        .from("sender@example.net")
        .to("alice@example.org")
        .subject("coid test message")
        .date(&rfc5322_date(SystemTime::now()))
        .message_id(&unique_message_id())
    }

    /// A COI chat: [`MessageBuilder::new`] with `Chat-Version: 1.0`.
    pub fn chat() -> Self {
        Self::new().header("Chat-Version", "1.0")
    }

    /// A chat read receipt: a chat that is an RFC 8098 MDN (`multipart/report`).
    pub fn chat_read_receipt() -> Self {
        Self::chat().set("Content-Type", MDN_TYPE).body(MDN_BODY)
    }

    /// A plain RFC 8098 read receipt (no `Chat-Version`).
    pub fn read_receipt() -> Self {
        Self::new().set("Content-Type", MDN_TYPE).body(MDN_BODY)
    }

    pub fn from(self, value: &str) -> Self {
        self.set("From", value)
    }

    pub fn to(self, value: &str) -> Self {
        self.set("To", value)
    }

    pub fn subject(self, value: &str) -> Self {
        self.set("Subject", value)
    }

    pub fn date(self, value: &str) -> Self {
        self.set("Date", value)
    }

    /// Set the Message-ID (include the angle brackets).
    pub fn message_id(self, value: &str) -> Self {
        self.set("Message-ID", value)
    }

    /// Append a header field (repeatable, e.g. `Received`).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replace the first field with this name (case-insensitive), or append it.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(field) => field.1 = value.to_owned(),
            None => self.headers.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    /// The body; bare LF line ends become CRLF.
    pub fn body(mut self, text: &str) -> Self {
        self.body = text.to_owned();
        self
    }

    /// The Message-ID (with the angle brackets).
    pub fn id(&self) -> String {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Message-ID"))
            .map(|(_, v)| v.clone())
            .expect("the builder always sets a Message-ID")
    }

    /// The message bytes: header fields, an empty line, the body (ends in CRLF).
    pub fn build(&self) -> Vec<u8> {
        let mut text = String::new();
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(&to_crlf(&self.body));
        if !text.ends_with("\r\n") {
            text.push_str("\r\n");
        }
        text.into_bytes()
    }
}

/// Normalise line ends to CRLF.
pub fn to_crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// An RFC 5322 date-time in UTC, e.g. `Thu, 01 Jan 2026 00:00:00 +0000`.
pub fn rfc5322_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let days = (secs / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
