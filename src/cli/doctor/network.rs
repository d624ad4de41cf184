//! `coid doctor --network`: can this host reach the push services coid sends to? A TCP
//! connection to Delta Chat's notification service (`[deltachat] notify_url`), opened
//! and closed without a request. Only on request: it sends traffic. Web Push endpoints
//! are chosen by clients and not contacted here (`coid push test ADDR` does that).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;
use crate::doctor::{Area, Finding};

/// How long one connection attempt may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The network findings.
pub fn check(config: &Config) -> Vec<Finding> {
    if !config.deltachat.push {
        return vec![Finding::ok(
            Area::Network,
            "[deltachat] push = false: no notification service to reach",
        )];
    }
    let url = &config.deltachat.notify_url;
    let Some((host, port)) = url::Url::parse(url)
        .ok()
        .and_then(|u| Some((u.host_str()?.to_owned(), u.port_or_known_default()?)))
    else {
        return vec![Finding::error(
            Area::Network,
            format!("[deltachat] notify_url = {url} has no host"),
            "coid check-config",
        )];
    };
    let addrs: Vec<_> = match (host.as_str(), port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => {
            return vec![Finding::error(
                Area::Network,
                format!("{url}: cannot resolve {host}: {err}"),
                "check /etc/resolv.conf and the host's DNS",
            )];
        }
    };
    let reached = addrs
        .iter()
        .find(|addr| TcpStream::connect_timeout(addr, TIMEOUT).is_ok());
    vec![match reached {
        Some(addr) => Finding::ok(Area::Network, format!("{url}: TCP connect to {addr}")),
        None => Finding::error(
            Area::Network,
            format!("{url}: no TCP connection to {host}:{port} ({addrs:?}) within {TIMEOUT:?}"),
            "allow outgoing HTTPS from this host (firewall, proxy)",
        ),
    }]
}
