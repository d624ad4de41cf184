//! `coid health`: asks the running coid whether it serves, as a monitoring check or an
//! operator would with `curl http://127.0.0.1:9466/health`, but without curl (a
//! minimal Debian has none): one `GET /health` over plain HTTP/1.1 to the config's
//! `[metrics] listen` address. Prints what coid answered; exits 0 on `200`, 1 on any
//! other answer or none (not running, starting, stopping), 78 when the config has no
//! metrics listener to ask.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::build::load_config;
use super::{exit, logging};

/// Not healthy: no answer, or an answer other than 200.
const UNHEALTHY: u8 = 1;

/// How long to wait to connect, and for each read and write.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of the answer read: `/health` says `ok` or why not.
const MAX_ANSWER: u64 = 4096;

/// Runs `coid health` with the config at `config_path`; returns the exit code.
pub fn run(config_path: &Path) -> u8 {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(listen) = config.metrics.listen else {
        logging::print_error(&format!(
            "health: {} has no [metrics] listen address to ask",
            config_path.display()
        ));
        return exit::CONFIG;
    };
    let addr = reachable(listen);
    match ask(addr) {
        Ok((200, body)) => {
            println!("{}", body.trim_end());
            exit::OK
        }
        Ok((status, body)) => {
            logging::print_error(&format!(
                "health: http://{addr}/health answered {status}: {}",
                body.trim_end()
            ));
            UNHEALTHY
        }
        Err(err) => {
            logging::print_error(&format!("health: http://{addr}/health: {err}"));
            UNHEALTHY
        }
    }
}

/// Where to connect for a listener on `listen`: a wildcard address is reached on
/// loopback.
pub(crate) fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// One `GET /health`; the status code and the body.
pub(crate) fn ask(addr: SocketAddr) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.take(MAX_ANSWER).read_to_end(&mut answer)?;
    parse_answer(&answer)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

/// The status code and body of an HTTP/1.x answer (body as text, lossily).
fn parse_answer(answer: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next()?;
    let mut words = status_line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    Some((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nok\n";
        assert_eq!(parse_answer(ok), Some((200, "ok\n".into())));
        let starting = b"HTTP/1.1 503 Service Unavailable\r\n\r\nstarting\n";
        assert_eq!(parse_answer(starting), Some((503, "starting\n".into())));
        assert_eq!(parse_answer(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_answer(b""), None);
        assert_eq!(parse_answer(b"HTTP/1.1 abc\r\n\r\n"), None);
    }

    #[test]
    fn wildcard_listeners_are_asked_on_loopback() {
        let v4: SocketAddr = "0.0.0.0:9466".parse().expect("addr");
        assert_eq!(reachable(v4), "127.0.0.1:9466".parse().expect("addr"));
        let v6: SocketAddr = "[::]:9466".parse().expect("addr");
        assert_eq!(reachable(v6), "[::1]:9466".parse().expect("addr"));
        let own: SocketAddr = "127.0.0.2:1".parse().expect("addr");
        assert_eq!(reachable(own), own);
    }
}
