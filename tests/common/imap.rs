//! IMAP helpers to check what was delivered: mailboxes with their hierarchy
//! delimiter, subscriptions, messages with their flags and raw bytes, lookup
//! by Message-ID across all mailboxes, and METADATA.
//!
//! Built on the `imap` crate without default features: a plain `TcpStream`
//! to 127.0.0.1, no TLS stack. Mailboxes are opened with EXAMINE and bodies
//! fetched with `BODY.PEEK[]`, so looking never changes a message's flags.
//! Failures of the server connection panic with a message (this is test
//! support); [`Imap::raw_command`] returns a `Result` so tests can check
//! NO/BAD answers. METADATA and raw commands use a second connection of the
//! same user through [`super::raw_imap`], because the `imap` crate aborts on
//! Dovecot's METADATA responses (see there).

use std::net::TcpStream;

use imap_proto::types::{Capability, NameAttribute};

use super::raw_imap::{RawImap, RawResponse, Token, connect, literal_plus, quoted};

/// EXAMINEs of one mailbox before [`Imap::find_all`] and friends give up.
const EXAMINE_TRIES: usize = 5;

/// A mailbox as returned by LIST or LSUB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxInfo {
    pub name: String,
    /// The hierarchy delimiter, e.g. `"/"` or `"."` (`None` for a flat name).
    pub delimiter: Option<String>,
    /// Attributes such as `\HasNoChildren`, `\Noselect`, `\Subscribed`.
    pub attributes: Vec<String>,
}

impl MailboxInfo {
    /// Whether the mailbox can be selected (not `\Noselect`/`\NonExistent`).
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }
}

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub mailbox: String,
    pub uid: u32,
    /// System flags (`\Seen`, `\Recent`...) and keywords (`$Chat`) as strings.
    pub flags: Vec<String>,
    /// The message as stored (`BODY[]`), including headers added on delivery.
    pub raw: Vec<u8>,
}

impl StoredMessage {
    /// Whether the message carries this flag or keyword (case-insensitive).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The (unfolded) values of every header field with this name.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        header_values(&self.raw, name)
    }

    /// The first value of a header field.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }

    /// The raw message as (lossy) text, handy in assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

/// A logged-in IMAP session.
pub struct Imap {
    session: imap::Session<TcpStream>,
    port: u16,
    user: String,
    password: String,
    raw: Option<RawImap>,
}

impl Imap {
    /// Connect to 127.0.0.1:`port` and LOGIN.
    pub fn login(port: u16, user: &str, password: &str) -> Result<Imap, String> {
        let mut client = imap::Client::new(connect(port)?);
        client
            .read_greeting()
            .map_err(|e| format!("reading the IMAP greeting: {e}"))?;
        let session = client
            .login(user, password)
            .map_err(|(e, _)| format!("LOGIN {user}: {e}"))?;
        Ok(Imap {
            session,
            port,
            user: user.to_owned(),
            password: password.to_owned(),
            raw: None,
        })
    }

    /// CAPABILITY after login (includes METADATA, QUOTA...).
    pub fn capabilities(&mut self) -> Vec<String> {
        let caps = self.session.capabilities().expect("IMAP CAPABILITY");
        caps.iter()
            .map(|c| match c {
                Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                Capability::Auth(mechanism) => format!("AUTH={mechanism}"),
                Capability::Atom(atom) => atom.to_string(),
            })
            .collect()
    }

    /// All mailboxes (`LIST "" *`).
    pub fn list(&mut self) -> Vec<MailboxInfo> {
        let names = self.session.list(Some(""), Some("*")).expect("IMAP LIST");
        names.iter().map(mailbox_info).collect()
    }

    /// Subscribed mailboxes (`LSUB "" *`).
    pub fn lsub(&mut self) -> Vec<MailboxInfo> {
        let names = self.session.lsub(Some(""), Some("*")).expect("IMAP LSUB");
        names.iter().map(mailbox_info).collect()
    }

    /// Names of all mailboxes.
    pub fn mailbox_names(&mut self) -> Vec<String> {
        self.list().into_iter().map(|m| m.name).collect()
    }

    /// Names of all subscribed mailboxes.
    pub fn subscribed_names(&mut self) -> Vec<String> {
        self.lsub().into_iter().map(|m| m.name).collect()
    }

    /// Every message in `mailbox`, in UID order.
    pub fn fetch_all(&mut self, mailbox: &str) -> Vec<StoredMessage> {
        self.examine(mailbox);
        self.fetch_uids(mailbox, "1:*")
    }

    /// The messages with this Message-ID in `mailbox` (empty if none).
    pub fn find_in(&mut self, mailbox: &str, message_id: &str) -> Vec<StoredMessage> {
        self.examine(mailbox);
        self.search_examined(mailbox, message_id)
    }

    /// The messages with this Message-ID in `mailbox`, which is open.
    fn search_examined(&mut self, mailbox: &str, message_id: &str) -> Vec<StoredMessage> {
        let query = format!("HEADER Message-ID {}", quoted(message_id));
        let uids = self
            .session
            .uid_search(&query)
            .unwrap_or_else(|e| panic!("IMAP UID SEARCH {query} in {mailbox}: {e}"));
        if uids.is_empty() {
            return Vec::new();
        }
        let mut uids: Vec<u32> = uids.into_iter().collect();
        uids.sort_unstable();
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        self.fetch_uids(mailbox, &set)
    }

    /// Every copy of the message in any selectable mailbox.
    ///
    /// A mailbox LIST showed that cannot be opened even after retries is looked up
    /// in LIST again: gone (deleted or renamed meanwhile) it is skipped, still there
    /// it panics with every error seen.
    pub fn find_all(&mut self, message_id: &str) -> Vec<StoredMessage> {
        let mailboxes: Vec<String> = self
            .list()
            .into_iter()
            .filter(MailboxInfo::selectable)
            .map(|m| m.name)
            .collect();
        let mut found = Vec::new();
        for mailbox in &mailboxes {
            if let Err(errors) = self.try_examine(mailbox) {
                if self.mailbox_names().contains(mailbox) {
                    panic!("IMAP EXAMINE {mailbox}: {errors:?}");
                }
                eprintln!("[imap] {mailbox} is gone since LIST: {errors:?}");
                continue;
            }
            found.extend(self.search_examined(mailbox, message_id));
        }
        found
    }

    /// The first copy of the message found in any mailbox.
    pub fn find_message(&mut self, message_id: &str) -> Option<StoredMessage> {
        self.find_all(message_id).into_iter().next()
    }

    /// How many copies of the message exist over all mailboxes.
    pub fn count_message(&mut self, message_id: &str) -> usize {
        self.find_all(message_id).len()
    }

    /// Send a raw command (without tag) on the raw connection and return
    /// the untagged responses as text (literals inline); `Err` on NO/BAD.
    pub fn raw_command(&mut self, command: &str) -> Result<String, String> {
        let response = self.raw_response(command)?;
        if response.status == "OK" {
            Ok(response.untagged_text())
        } else {
            Err(format!("{command}: {} {}", response.status, response.text))
        }
    }

    /// Send a raw command and return everything the server answered.
    pub fn raw_response(&mut self, command: &str) -> Result<RawResponse, String> {
        if self.raw.is_none() {
            self.raw = Some(RawImap::login(self.port, &self.user, &self.password)?);
        }
        self.raw
            .as_mut()
            .expect("raw IMAP connection was just opened")
            .command(command)
    }

    /// GETMETADATA of one entry; `mailbox` `None` means the server entry ("").
    pub fn get_metadata(&mut self, mailbox: Option<&str>, entry: &str) -> Option<String> {
        let mailbox = mailbox.unwrap_or("");
        let command = format!("GETMETADATA {} ({entry})", quoted(mailbox));
        let response = self
            .raw_response(&command)
            .unwrap_or_else(|e| panic!("IMAP {command}: {e}"));
        assert_eq!(response.status, "OK", "IMAP {command}: {response:?}");
        response.untagged.iter().find_map(|u| {
            // * METADATA <mailbox> (<entry> <value> ...)
            let tokens = &u.tokens;
            let at = tokens
                .iter()
                .position(|t| matches!(t, Token::Atom(a) if a.eq_ignore_ascii_case(entry)))?;
            tokens.get(at + 1)?.value()
        })
    }

    /// SETMETADATA of one entry (`value` `None` deletes it); `mailbox` `""` is the server.
    pub fn set_metadata(&mut self, mailbox: &str, entry: &str, value: Option<&str>) {
        let value = value.map_or_else(|| "NIL".to_owned(), literal_plus);
        let command = format!("SETMETADATA {} ({entry} {value})", quoted(mailbox));
        let result = self.raw_command(&command);
        if let Err(e) = result {
            panic!("IMAP {e}");
        }
    }

    /// Direct access to the underlying `imap` crate session.
    pub fn session(&mut self) -> &mut imap::Session<TcpStream> {
        &mut self.session
    }

    fn examine(&mut self, mailbox: &str) {
        if let Err(errors) = self.try_examine(mailbox) {
            panic!("IMAP EXAMINE {mailbox}: {errors:?}");
        }
    }

    /// EXAMINE, sent again when the `imap` crate could not read an answer the
    /// server gave. The crate takes only the responses RFC 3501 lists for SELECT and
    /// gives up on any other (`Error::Unexpected`, `Error::Parse`), but Dovecot may
    /// first report what changed meanwhile in the mailbox that was open before (a
    /// `FETCH` of flags another session or a delivery changed): under load that
    /// happens, the server has opened the mailbox, and only the client failed. A
    /// `NO` is retried too, so a mailbox that LIST showed while it was being created
    /// gets its chance. Every failure is printed; after [`EXAMINE_TRIES`] the
    /// errors are returned.
    fn try_examine(&mut self, mailbox: &str) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        for _ in 0..EXAMINE_TRIES {
            match self.session.examine(mailbox) {
                Ok(_) => return Ok(()),
                Err(err) => {
                    eprintln!("[imap] EXAMINE {mailbox} failed, trying again: {err:?}");
                    errors.push(format!("{err:?}"));
                    // Anything unsolicited still pending goes with the NOOP's answer.
                    let _ = self.session.noop();
                }
            }
        }
        Err(errors)
    }

    fn fetch_uids(&mut self, mailbox: &str, uid_set: &str) -> Vec<StoredMessage> {
        let fetches = self
            .session
            .uid_fetch(uid_set, "(UID FLAGS BODY.PEEK[])")
            .unwrap_or_else(|e| panic!("IMAP UID FETCH {uid_set} in {mailbox}: {e}"));
        let mut messages: Vec<StoredMessage> = fetches
            .iter()
            .filter_map(|f| {
                Some(StoredMessage {
                    mailbox: mailbox.to_owned(),
                    uid: f.uid?,
                    flags: f.flags().iter().map(ToString::to_string).collect(),
                    raw: f.body()?.to_vec(),
                })
            })
            .collect();
        messages.sort_by_key(|m| m.uid);
        messages
    }
}

fn mailbox_info(name: &imap::types::Name<'_>) -> MailboxInfo {
    MailboxInfo {
        name: name.name().to_owned(),
        delimiter: name.delimiter().map(str::to_owned),
        attributes: name.attributes().iter().map(attribute_text).collect(),
    }
}

fn attribute_text(attribute: &NameAttribute<'_>) -> String {
    match attribute {
        NameAttribute::NoInferiors => "\\Noinferiors".to_owned(),
        NameAttribute::NoSelect => "\\Noselect".to_owned(),
        NameAttribute::Marked => "\\Marked".to_owned(),
        NameAttribute::Unmarked => "\\Unmarked".to_owned(),
        NameAttribute::All => "\\All".to_owned(),
        NameAttribute::Archive => "\\Archive".to_owned(),
        NameAttribute::Drafts => "\\Drafts".to_owned(),
        NameAttribute::Flagged => "\\Flagged".to_owned(),
        NameAttribute::Junk => "\\Junk".to_owned(),
        NameAttribute::Sent => "\\Sent".to_owned(),
        NameAttribute::Trash => "\\Trash".to_owned(),
        NameAttribute::Extension(other) => other.to_string(),
        other => format!("{other:?}"),
    }
}

/// Unfolded values of all header fields called `name` in a raw message.
pub fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut fields: Vec<String> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    fields
        .iter()
        .filter_map(|f| {
            let (field, value) = f.split_once(':')?;
            field
                .trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
        .collect()
}
