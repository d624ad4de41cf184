//! Reading coid's metrics and health listener (`[metrics] listen`): a plain HTTP/1.0
//! GET, and the value of one sample in an OpenMetrics exposition.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::wait_until;

/// `GET path` over HTTP/1.0 (the server closes after the answer): status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connect to coid's metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or((answer.as_str(), ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    (status, body.to_owned())
}

/// The value of the sample `series` (name and labels, as encoded) in an exposition.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// The `/metrics` exposition, which must be served.
pub fn scrape(addr: SocketAddr) -> String {
    let (status, text) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "/metrics: {text}");
    text
}

/// Waits until every `(series, value)` in `expected` is exposed with that value;
/// panics with the last exposition after `timeout`.
pub fn wait_samples(addr: SocketAddr, expected: &[(&str, f64)], timeout: Duration) {
    let want: Vec<Option<f64>> = expected.iter().map(|(_, v)| Some(*v)).collect();
    let mut last = (Vec::new(), String::new());
    let seen = wait_until(timeout, || {
        let text = scrape(addr);
        let seen: Vec<Option<f64>> = expected.iter().map(|(s, _)| sample(&text, s)).collect();
        let done = seen == want;
        last = (seen, text);
        done.then_some(())
    });
    assert!(
        seen.is_some(),
        "expected {expected:?} within {timeout:?}, got {:?} in\n{}",
        last.0,
        last.1
    );
}
