//! The trusted headers that carry a policy decision to Dovecot: coid prepends them and
//! the shipped Pigeonhole `sieve_before` script (`conf.d/dovecot/coid.sieve`) files the
//! message accordingly and deletes them. Incoming copies are stripped by
//! [`super::stream::HeaderFilter`], so only coid can set them; the filter also drops a
//! continuation line at the top of the message, so no sender byte after these lines
//! can continue the last of them.
//!
//! ```text
//! X-Coid-Folder: COI/Chats     target folder, in the store's hierarchy separator
//! X-Coid-Flags: $Chat          IMAP flags/keywords, space separated (may be empty)
//! X-Coid-Create: yes           fileinto :create (RFC 5490)
//! ```

use base64::Engine as _;

use crate::policy::Target;

/// Builds the header lines for `target`, or nothing for a plain keep (the message then
/// reaches Dovecot exactly as without coid). `separator` is the store's hierarchy
/// separator; policy folder names use `/`.
pub fn route_headers(target: &Target, separator: char) -> Vec<u8> {
    if target.is_plain_keep() {
        return Vec::new();
    }
    let folder = target.store_folder(separator);
    let flags: Vec<&str> = target
        .flags
        .iter()
        .map(String::as_str)
        .filter(|f| is_flag(f))
        .collect();
    let mut out = format!(
        "X-Coid-Folder: {}\r\nX-Coid-Flags: {}\r\n",
        encode(&folder),
        flags.join(" ")
    );
    if target.create {
        out.push_str("X-Coid-Create: yes\r\n");
    }
    out.into_bytes()
}

/// An IMAP flag (`\Seen`) or keyword atom (RFC 3501 `flag-keyword`).
fn is_flag(flag: &str) -> bool {
    let atom = flag.strip_prefix('\\').unwrap_or(flag);
    !atom.is_empty()
        && atom.len() <= 200
        && atom
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
}

/// Header-safe form of a folder name: printable ASCII as is, anything else as an
/// RFC 2047 encoded-word (Pigeonhole's `header` test decodes it).
fn encode(folder: &str) -> String {
    if folder.bytes().all(|b| (0x20..0x7f).contains(&b)) && !folder.contains("=?") {
        folder.to_owned()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(folder.as_bytes());
        format!("=?UTF-8?B?{b64}?=")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keep_adds_nothing() {
        assert!(route_headers(&Target::inbox(), '/').is_empty());
    }

    #[test]
    fn folder_uses_store_separator_and_flags_are_sanitised() {
        let t = Target {
            folder: Some("COI/Chats".into()),
            flags: vec![
                "$Chat".into(),
                "\\Seen".into(),
                "bad flag".into(),
                "x\r\nX-Evil: 1".into(),
            ],
            create: true,
        };
        let h = String::from_utf8(route_headers(&t, '.')).expect("ascii");
        assert_eq!(
            h,
            "X-Coid-Folder: COI.Chats\r\nX-Coid-Flags: $Chat \\Seen\r\nX-Coid-Create: yes\r\n"
        );
    }

    #[test]
    fn non_ascii_folder_is_encoded() {
        let t = Target {
            folder: Some("Büro\r\n".into()),
            flags: vec![],
            create: false,
        };
        let h = String::from_utf8(route_headers(&t, '/')).expect("ascii");
        assert!(h.starts_with("X-Coid-Folder: =?UTF-8?B?"), "{h}");
        assert_eq!(h.matches("\r\n").count(), 2);
    }
}
