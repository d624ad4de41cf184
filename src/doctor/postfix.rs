//! Postfix, from `postconf -x` (every parameter, `$name` expanded) and the source text
//! of each file-based `transport_maps` table: does mailbox delivery reach coid, and do
//! the recipient limits fit coid's and Delta Chat's?
//!
//! A transport reaches coid when it is `lmtp:unix:PATH` with PATH (relative to
//! `queue_directory`) coid's `[lmtp] unix_socket`, or `lmtp:[HOST]:PORT` /
//! `lmtp:inet:HOST:PORT` with one of coid's `[lmtp] tcp` addresses. Other transports
//! (a `master.cf` service of its own) are not followed: they count as not coid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use super::{Area, Finding};

/// What Postfix must match on coid's side.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `[lmtp] unix_socket` (empty: none).
    pub unix_socket: &'a Path,
    /// `[lmtp] tcp`.
    pub tcp: &'a [SocketAddr],
    /// `[lmtp] max_recipients`.
    pub max_recipients: usize,
    /// `[deltachat] maxsmtprecipients`.
    pub maxsmtprecipients: u32,
}

/// `postconf` output as a map of parameter → value.
pub fn parse(postconf: &str) -> HashMap<String, String> {
    postconf
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Whether a transport (`lmtp:unix:coid/lmtp`) delivers to coid.
pub fn is_coid(transport: &str, queue_directory: &str, coid: &Expect<'_>) -> bool {
    let Some(next) = transport.trim().strip_prefix("lmtp:") else {
        return false;
    };
    if let Some(path) = next.strip_prefix("unix:") {
        if coid.unix_socket.as_os_str().is_empty() {
            return false;
        }
        let full = if path.starts_with('/') {
            Path::new(path).to_path_buf()
        } else {
            Path::new(queue_directory).join(path)
        };
        return full == coid.unix_socket;
    }
    let hostport = next.strip_prefix("inet:").unwrap_or(next);
    let plain = hostport.replace(['[', ']'], "");
    let localhost = |a: &str| a.replace("localhost", "127.0.0.1");
    coid.tcp.iter().any(|listen| {
        let listen = listen.to_string().replace(['[', ']'], "");
        listen == plain || localhost(&listen) == localhost(&plain)
    })
}

/// The transport that points at coid, as a `main.cf` value.
fn coid_transport(coid: &Expect<'_>) -> String {
    let socket = coid.unix_socket;
    match socket.strip_prefix("/var/spool/postfix/") {
        Ok(rel) => format!("lmtp:unix:{}", rel.display()),
        Err(_) if !socket.as_os_str().is_empty() => format!("lmtp:unix:{}", socket.display()),
        Err(_) => format!(
            "lmtp:inet:{}",
            coid.tcp
                .first()
                .map_or("127.0.0.1:PORT".to_owned(), ToString::to_string)
        ),
    }
}

/// Every Postfix check. `maps` holds the source text of each file-based table named
/// in `transport_maps` (`hash:/etc/postfix/transport` → the text of that file).
pub fn check(postconf: &str, maps: &[(String, String)], coid: &Expect<'_>) -> Vec<Finding> {
    let p = parse(postconf);
    if p.is_empty() {
        return vec![Finding::error(
            Area::Postfix,
            "postconf printed no parameters",
            "run coid doctor as root on the Postfix host",
        )];
    }
    let mut out = transports(&p, maps, coid);
    out.extend(limits(&p, coid));
    out
}

/// virtual_transport, mailbox_transport, transport map entries.
fn transports(
    p: &HashMap<String, String>,
    maps: &[(String, String)],
    coid: &Expect<'_>,
) -> Vec<Finding> {
    let queue = p
        .get("queue_directory")
        .map_or("/var/spool/postfix", String::as_str);
    let get = |name: &str| p.get(name).map_or("", String::as_str);
    let want = coid_transport(coid);
    let mut out = Vec::new();
    let mut reaching = 0;
    for name in ["virtual_transport", "mailbox_transport"] {
        let value = get(name);
        if is_coid(value, queue, coid) {
            reaching += 1;
            out.push(Finding::ok(
                Area::Postfix,
                format!("{name} = {value}: coid"),
            ));
        } else if name == "virtual_transport" && !get("virtual_mailbox_domains").is_empty() {
            out.push(Finding::warning(
                Area::Postfix,
                format!(
                    "virtual_transport = {value} does not deliver to coid (virtual_mailbox_domains = {}): \
                     mail for virtual users bypasses coid",
                    get("virtual_mailbox_domains")
                ),
                format!("postconf -e 'virtual_transport = {want}' && postfix reload"),
            ));
        }
    }
    for (map, text) in maps {
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(key), Some(transport)) = (words.next(), words.next()) else {
                continue;
            };
            if is_coid(transport, queue, coid) {
                reaching += 1;
                out.push(Finding::ok(
                    Area::Postfix,
                    format!("transport_maps {map}: {key} {transport}: coid"),
                ));
            } else if transport.starts_with("lmtp:") {
                out.push(Finding::warning(
                    Area::Postfix,
                    format!("transport_maps {map}: {key} {transport} is LMTP but not coid's"),
                    format!("in {}: {key} {want}, then postmap it", map_file(map)),
                ));
            }
        }
    }
    if reaching == 0 {
        out.push(Finding::error(
            Area::Postfix,
            format!(
                "no transport delivers to coid (virtual_transport = {}, mailbox_transport = {}, \
                 no transport_maps entry): mail never reaches coid",
                get("virtual_transport"),
                get("mailbox_transport")
            ),
            format!("postconf -e 'virtual_transport = {want}' (virtual users) or 'mailbox_transport = {want}' (local users), then postfix reload"),
        ));
    }
    out
}

/// The file of a `type:/path` table.
fn map_file(map: &str) -> &str {
    map.split_once(':').map_or(map, |(_, path)| path)
}

/// smtpd_recipient_limit against Delta Chat's maxsmtprecipients; Postfix's LMTP batch
/// against coid's max_recipients.
fn limits(p: &HashMap<String, String>, coid: &Expect<'_>) -> Vec<Finding> {
    let num = |name: &str| p.get(name).and_then(|v| v.parse::<u64>().ok());
    let mut out = Vec::new();
    let dc = u64::from(coid.maxsmtprecipients);
    match num("smtpd_recipient_limit") {
        Some(limit) if limit == dc => out.push(Finding::ok(
            Area::Postfix,
            format!("smtpd_recipient_limit = {limit} = [deltachat] maxsmtprecipients"),
        )),
        Some(limit) if limit < dc => out.push(Finding::error(
            Area::Postfix,
            format!(
                "smtpd_recipient_limit = {limit} is below [deltachat] maxsmtprecipients = {dc}: \
                 Delta Chat sends up to {dc} recipients per message and Postfix refuses the rest"
            ),
            format!("postconf -e 'smtpd_recipient_limit = {dc}' (or maxsmtprecipients = {limit} in coid.toml)"),
        )),
        Some(limit) => out.push(Finding::warning(
            Area::Postfix,
            format!(
                "smtpd_recipient_limit = {limit} differs from [deltachat] maxsmtprecipients = {dc}: \
                 Delta Chat splits messages into smaller sends than needed"
            ),
            format!("[deltachat] maxsmtprecipients = {limit} in coid.toml"),
        )),
        None => out.push(Finding::warning(
            Area::Postfix,
            "postconf shows no numeric smtpd_recipient_limit",
            "",
        )),
    }
    let lmtp = num("lmtp_destination_recipient_limit")
        .or_else(|| num("default_destination_recipient_limit"));
    match lmtp {
        Some(n) if n <= coid.max_recipients as u64 => out.push(Finding::ok(
            Area::Postfix,
            format!(
                "lmtp_destination_recipient_limit = {n} <= [lmtp] max_recipients = {}",
                coid.max_recipients
            ),
        )),
        Some(n) => out.push(Finding::warning(
            Area::Postfix,
            format!(
                "lmtp_destination_recipient_limit = {n} is above [lmtp] max_recipients = {}: \
                 coid defers the recipients past its limit and Postfix retries them later",
                coid.max_recipients
            ),
            format!(
                "postconf -e 'lmtp_destination_recipient_limit = {}'",
                coid.max_recipients
            ),
        )),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Severity;

    const DEBIAN: &str = "queue_directory = /var/spool/postfix\nsmtpd_recipient_limit = 1000\n\
        lmtp_destination_recipient_limit = 50\nvirtual_mailbox_domains = example.net\n\
        virtual_transport = lmtp:unix:coid/lmtp\nmailbox_transport = lmtp:unix:coid/lmtp\n";

    fn coid(tcp: &[SocketAddr]) -> Expect<'_> {
        Expect {
            unix_socket: Path::new("/var/spool/postfix/coid/lmtp"),
            tcp,
            max_recipients: 1000,
            maxsmtprecipients: 1000,
        }
    }

    fn worst(findings: &[Finding]) -> Severity {
        findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    #[test]
    fn transports_that_reach_coid() {
        let tcp = vec![SocketAddr::from(([127, 0, 0, 1], 2424))];
        let c = coid(&tcp);
        let q = "/var/spool/postfix";
        assert!(is_coid("lmtp:unix:coid/lmtp", q, &c));
        assert!(is_coid("lmtp:unix:/var/spool/postfix/coid/lmtp", q, &c));
        assert!(is_coid("lmtp:inet:127.0.0.1:2424", q, &c));
        assert!(is_coid("lmtp:[127.0.0.1]:2424", q, &c));
        assert!(is_coid("lmtp:localhost:2424", q, &c));
        assert!(!is_coid("lmtp:unix:private/dovecot-lmtp", q, &c));
        assert!(!is_coid("lmtp:[127.0.0.1]:24", q, &c));
        assert!(!is_coid("dovecot", q, &c));
        assert!(!is_coid("", q, &c));
    }

    #[test]
    fn the_booted_host_is_fine() {
        let findings = check(DEBIAN, &[], &coid(&[]));
        assert_eq!(worst(&findings), Severity::Ok, "{findings:#?}");
    }

    #[test]
    fn virtual_transport_to_dovecot_is_named_with_its_fix() {
        let text = DEBIAN.replace(
            "virtual_transport = lmtp:unix:coid/lmtp",
            "virtual_transport = lmtp:unix:private/dovecot-lmtp",
        );
        let findings = check(&text, &[], &coid(&[]));
        let f = findings
            .iter()
            .find(|f| f.severity == Severity::Warning)
            .expect("warning");
        assert!(
            f.what
                .starts_with("virtual_transport = lmtp:unix:private/dovecot-lmtp"),
            "{f:?}"
        );
        assert_eq!(
            f.fix.as_deref(),
            Some("postconf -e 'virtual_transport = lmtp:unix:coid/lmtp' && postfix reload")
        );
        let none = text.replace(
            "mailbox_transport = lmtp:unix:coid/lmtp",
            "mailbox_transport =",
        );
        let findings = check(&none, &[], &coid(&[]));
        assert_eq!(worst(&findings), Severity::Error);
        assert!(
            findings
                .iter()
                .any(|f| f.what.starts_with("no transport delivers to coid"))
        );
    }

    #[test]
    fn a_transport_map_entry_counts() {
        let text = "queue_directory = /var/spool/postfix\nvirtual_transport = virtual\n\
            mailbox_transport =\nsmtpd_recipient_limit = 1000\n";
        let maps = vec![(
            "hash:/etc/postfix/transport".to_owned(),
            "# comment\nexample.net lmtp:unix:coid/lmtp\nother.org lmtp:[10.0.0.2]:24\n".to_owned(),
        )];
        let findings = check(text, &maps, &coid(&[]));
        assert!(
            findings
                .iter()
                .any(|f| f.severity == Severity::Ok && f.what.contains("example.net"))
        );
        let other = findings
            .iter()
            .find(|f| f.what.contains("other.org"))
            .expect("other");
        assert_eq!(other.severity, Severity::Warning);
        assert!(
            other
                .fix
                .as_deref()
                .unwrap_or("")
                .starts_with("in /etc/postfix/transport: other.org lmtp:unix:coid/lmtp")
        );
        assert!(!findings.iter().any(|f| f.what.starts_with("no transport")));
    }

    #[test]
    fn recipient_limits() {
        let low = DEBIAN.replace(
            "smtpd_recipient_limit = 1000",
            "smtpd_recipient_limit = 100",
        );
        let findings = check(&low, &[], &coid(&[]));
        let f = findings
            .iter()
            .find(|f| f.severity == Severity::Error)
            .expect("error");
        assert!(
            f.what.starts_with("smtpd_recipient_limit = 100 is below"),
            "{f:?}"
        );
        assert_eq!(
            f.fix
                .as_deref()
                .map(|s| s.starts_with("postconf -e 'smtpd_recipient_limit = 1000'")),
            Some(true)
        );
        let high = DEBIAN.replace(
            "smtpd_recipient_limit = 1000",
            "smtpd_recipient_limit = 2000",
        );
        assert_eq!(worst(&check(&high, &[], &coid(&[]))), Severity::Warning);
        let batch = DEBIAN.replace(
            "lmtp_destination_recipient_limit = 50",
            "lmtp_destination_recipient_limit = 5000",
        );
        let findings = check(&batch, &[], &coid(&[]));
        assert!(
            findings
                .iter()
                .any(|f| f.severity == Severity::Warning && f.what.contains("max_recipients"))
        );
        assert_eq!(worst(&check("", &[], &coid(&[]))), Severity::Error);
    }
}
