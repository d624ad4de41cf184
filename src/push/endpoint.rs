//! Which push endpoints coid may contact. Endpoints are URLs chosen by users, so by
//! default only `https` to public addresses is allowed: no loopback, private,
//! link-local, shared (CGNAT), multicast or unspecified targets, checked on the URL's
//! literal host and again on every address a name resolves to (so DNS cannot point
//! coid at an internal service). `allow_private` (for tests and private push servers)
//! lifts both rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Why an endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not https.
    #[error("push endpoints must use https")]
    NotHttps,
    /// The address is not a public one.
    #[error("push endpoint address {0} is not public")]
    NotPublic(IpAddr),
    /// No host in the URL.
    #[error("push endpoint has no host")]
    NoHost,
}

/// The operator's endpoint rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointPolicy {
    /// Allow http and non-public addresses.
    pub allow_private: bool,
}

impl EndpointPolicy {
    /// Checks the URL itself: scheme, and the host when it is an address literal.
    ///
    /// # Errors
    /// The rule it breaks.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if self.allow_private {
            return url.host().map(|_| ()).ok_or(Refused::NoHost);
        }
        if url.scheme() != "https" {
            return Err(Refused::NotHttps);
        }
        match url.host().ok_or(Refused::NoHost)? {
            Host::Domain(_) => Ok(()),
            Host::Ipv4(v4) => self.check_addr(IpAddr::V4(v4)),
            Host::Ipv6(v6) => self.check_addr(IpAddr::V6(v6)),
        }
    }

    /// Checks one address a host name resolved to.
    ///
    /// # Errors
    /// [`Refused::NotPublic`].
    pub fn check_addr(&self, addr: IpAddr) -> Result<(), Refused> {
        if self.allow_private || is_public(addr) {
            Ok(())
        } else {
            Err(Refused::NotPublic(addr))
        }
    }
}

/// Whether `addr` is a globally routable unicast address.
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(a: Ipv4Addr) -> bool {
    let [first, second, ..] = a.octets();
    let shared = first == 100 && (64..128).contains(&second); // RFC 6598
    let this_network = first == 0; // RFC 791
    let reserved = first >= 240; // RFC 1112, incl. broadcast
    !(a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || a.is_unspecified()
        || a.is_documentation()
        || shared
        || this_network
        || reserved)
}

fn is_public_v6(a: Ipv6Addr) -> bool {
    let first = a.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00; // RFC 4193
    let link_local = first & 0xffc0 == 0xfe80; // RFC 4291
    let documentation = first == 0x2001 && a.segments()[1] == 0x0db8; // RFC 3849
    !(a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || unique_local
        || link_local
        || documentation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    #[test]
    fn default_policy_wants_https_and_public_addresses() {
        let p = EndpointPolicy::default();
        assert_eq!(p.check_url(&url("https://push.example/x")), Ok(()));
        assert_eq!(p.check_url(&url("https://93.184.216.34/x")), Ok(()));
        assert_eq!(
            p.check_url(&url("http://push.example/x")),
            Err(Refused::NotHttps)
        );
        for private in [
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(p.check_url(&url(private)), Err(Refused::NotPublic(_))),
                "{private}"
            );
        }
    }

    #[test]
    fn resolved_addresses_are_checked_too() {
        let p = EndpointPolicy::default();
        assert!(p.check_addr("127.0.0.53".parse().expect("ip")).is_err());
        assert!(
            p.check_addr("2a00:1450:4001::1".parse().expect("ip"))
                .is_ok()
        );
    }

    #[test]
    fn the_switch_allows_loopback_http() {
        let p = EndpointPolicy {
            allow_private: true,
        };
        assert_eq!(p.check_url(&url("http://127.0.0.1:8080/push")), Ok(()));
        assert_eq!(p.check_addr("::1".parse().expect("ip")), Ok(()));
    }
}
