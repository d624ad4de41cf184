//! What the policy decided for one recipient, in coid's own terms (independent of
//! sieve-rs), and how it prints in `coid explain`.

use serde::Serialize;

/// One place to store a copy of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Folder with `/` as hierarchy separator; `None` is INBOX (keep).
    pub folder: Option<String>,
    /// IMAP flags and keywords to set (`\Seen`, `$Chat`, ...).
    pub flags: Vec<String>,
    /// Create the folder if it does not exist (`fileinto :create`, RFC 5490).
    pub create: bool,
}

impl Target {
    /// The folder's name in a store whose hierarchy separator is `separator` (policy
    /// folder names use `/`); INBOX for a keep.
    pub fn store_folder(&self, separator: char) -> String {
        match &self.folder {
            Some(folder) => folder.replace('/', &separator.to_string()),
            None => "INBOX".to_owned(),
        }
    }

    /// Plain keep into INBOX, no flags: delivery exactly as without coid.
    pub fn inbox() -> Target {
        Target {
            folder: None,
            flags: Vec::new(),
            create: false,
        }
    }

    /// True when the store can take the message as if coid were not there.
    pub fn is_plain_keep(&self) -> bool {
        self.folder.is_none() && self.flags.is_empty()
    }
}

/// The decision for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store a copy in each target (at least one).
    Deliver(Vec<Target>),
    /// Accept and drop.
    Discard,
    /// Refuse for this recipient with a 550 and this reason.
    Reject(String),
}

/// The outcome of one policy run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The decision.
    pub verdict: Verdict,
    /// Set when the script failed and the fail-safe keep was used.
    pub warning: Option<String>,
}

impl Evaluation {
    /// The fail-safe: keep in INBOX, with the reason.
    pub fn fallback(reason: String) -> Evaluation {
        Evaluation {
            verdict: Verdict::Deliver(vec![Target::inbox()]),
            warning: Some(reason),
        }
    }
}

/// One recipient in `coid explain` output.
#[derive(Debug, Clone, Serialize)]
pub struct Explained {
    /// The recipient address.
    pub rcpt: String,
    /// `keep`, `fileinto`, `discard` or `reject`.
    pub action: &'static str,
    /// Target folder for fileinto (with `/`), `INBOX` for keep, else null.
    pub folder: Option<String>,
    /// Flags set on the stored message.
    pub flags: Vec<String>,
    /// Reject reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Further copies (`fileinto :copy` plus keep), if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<Target>,
    /// Why the fail-safe keep was used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Explained {
    /// Describes an evaluation for `rcpt`.
    pub fn new(rcpt: &str, evaluation: &Evaluation) -> Explained {
        let mut out = Explained {
            rcpt: rcpt.to_owned(),
            action: "keep",
            folder: None,
            flags: Vec::new(),
            reason: None,
            copies: Vec::new(),
            warning: evaluation.warning.clone(),
        };
        match &evaluation.verdict {
            Verdict::Discard => out.action = "discard",
            Verdict::Reject(reason) => {
                out.action = "reject";
                out.reason = Some(reason.clone());
            }
            Verdict::Deliver(targets) => {
                let mut targets = targets.iter();
                if let Some(first) = targets.next() {
                    out.action = if first.folder.is_some() {
                        "fileinto"
                    } else {
                        "keep"
                    };
                    out.folder = Some(first.folder.clone().unwrap_or_else(|| "INBOX".into()));
                    out.flags = first.flags.clone();
                }
                out.copies = targets.cloned().collect();
            }
        }
        out
    }
}
