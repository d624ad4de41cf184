//! HTTP/1.1 on the wire for the notification stand-in (RFC 9112): reading one request
//! (a `Content-Length` or chunked body, within [`MAX_HEAD`] and [`MAX_BODY`]) and
//! writing an answer with an empty body.

use std::io::BufRead;

use super::{MAX_BODY, MAX_HEAD};

/// A request over [`MAX_HEAD`] or [`MAX_BODY`].
pub struct TooLarge;

/// Reads one request: `Ok(None)` at a clean end of the connection, a timeout, or a
/// malformed request (the connection is then closed).
pub fn read_request(
    reader: &mut impl BufRead,
) -> Result<Option<(String, String, Vec<u8>)>, TooLarge> {
    let Some(head) = read_head(reader)? else {
        return Ok(None);
    };
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path)) = (first.next(), first.next()) else {
        return Ok(None);
    };
    let mut length = 0;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().unwrap_or(usize::MAX);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let body = if chunked {
        read_chunked(reader)?
    } else {
        read_exact_body(reader, length)?
    };
    Ok(body.map(|body| (method.to_owned(), path.to_owned(), body)))
}

/// The request line and header fields, without the empty line.
fn read_head(reader: &mut impl BufRead) -> Result<Option<String>, TooLarge> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
        if line == "\r\n" || line == "\n" {
            return Ok(Some(head));
        }
        head.push_str(&line);
        if head.len() > MAX_HEAD {
            return Err(TooLarge);
        }
    }
}

fn read_exact_body(reader: &mut impl BufRead, length: usize) -> Result<Option<Vec<u8>>, TooLarge> {
    if length > MAX_BODY {
        return Err(TooLarge);
    }
    let mut body = vec![0; length];
    Ok(reader.read_exact(&mut body).ok().map(|()| body))
}

/// A `Transfer-Encoding: chunked` body (RFC 9112 §7.1), trailers skipped.
fn read_chunked(reader: &mut impl BufRead) -> Result<Option<Vec<u8>>, TooLarge> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return Ok(None);
        }
        let hex = size.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(hex, 16) else {
            return Ok(None);
        };
        if size == 0 {
            return Ok(read_head(reader)?.map(|_trailers| body));
        }
        if body.len() + size > MAX_BODY {
            return Err(TooLarge);
        }
        let mut chunk = vec![0; size + 2]; // data and its CRLF
        if reader.read_exact(&mut chunk).is_err() {
            return Ok(None);
        }
        chunk.truncate(size);
        body.extend_from_slice(&chunk);
    }
}

/// A whole answer: status line, `fields`, an empty body.
pub fn answer_bytes(code: u16, fields: &[String], close: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {code} {}\r\nContent-Length: 0\r\n", reason(code));
    for field in fields {
        head.push_str(field);
        head.push_str("\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        302 => "Found",
        404 => "Not Found",
        410 => "Gone",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        _ => "Scripted",
    }
}
