//! Quick start: coid on its embedded Maildir backend and the built-in COI policy,
//! in a temporary state directory. It turns COI on for alice with message-filter
//! `active`, sends a plain email and a COI chat over LMTP, and shows where each landed.
//!
//! Run: `cargo run --example quickstart`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use coid::app::build::build_pipeline;
use coid::app::contexts::lmtp_context;
use coid::config::{Config, DeliveryBackend};
use coid::server::{self, Listener, ShutdownPolicy};
use coid::store::{ENTRY_ENABLED, ENTRY_MESSAGE_FILTER};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.state.dir = dir.path().to_owned();
    config.lmtp.tcp = vec!["127.0.0.1:0".parse()?];
    config.delivery.backend = DeliveryBackend::Maildir;
    config.delivery.maildir.fsync = false;
    let (pipeline, store) =
        build_pipeline(&config).map_err(|err| format!("setup failed: {err}"))?;
    store.set("alice@example.org", ENTRY_ENABLED, Some("yes"))?;
    store.set("alice@example.org", ENTRY_MESSAGE_FILTER, Some("active"))?;
    std::fs::create_dir_all(config.spool_dir())?;

    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(Listener::tcp("127.0.0.1:0"))?;
    let addr = listener.local_addr().ok_or("no address")?;
    let (_ctx_tx, ctx) = tokio::sync::watch::channel(Arc::new(lmtp_context(&config, pipeline)));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(server::run(
        vec![listener],
        ctx,
        8,
        async {
            let _ = stop_rx.await;
        },
        ShutdownPolicy {
            grace: Duration::from_secs(5),
        },
    ));
    println!(
        "coid listening on {addr}, state in {}\n",
        dir.path().display()
    );

    let email = "From: bob@example.net\r\nTo: alice@example.org\r\nSubject: lunch?\r\nMessage-ID: <plain-1@example.net>\r\n\r\nHi Alice\r\n";
    let chat = "From: bob@example.net\r\nTo: alice@example.org\r\nChat-Version: 1.0\r\nMessage-ID: <chat$quickstart1@example.net>\r\n\r\nhi from a chat\r\n";
    for (name, message) in [("plain email", email), ("COI chat", chat)] {
        let replies = lmtp_send(&addr.to_string(), message)?;
        println!("{name:12} -> {}", replies.join(" | "));
    }

    println!("\nMaildir of alice@example.org:");
    let root = dir.path().join("mail/example.org/alice/Maildir");
    for entry in walk(&root)? {
        println!("  {}", entry.strip_prefix(&root)?.display());
    }
    let _ = stop_tx.send(());
    runtime.block_on(server)?;
    Ok(())
}

/// One LMTP transaction; returns the reply to the final dot.
fn lmtp_send(addr: &str, message: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut stream = TcpStream::connect(addr)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    let mut read_reply = |reader: &mut BufReader<TcpStream>| -> std::io::Result<String> {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_owned());
            }
        }
    };
    read_reply(&mut reader)?;
    for cmd in [
        "LHLO quickstart",
        "MAIL FROM:<bob@example.net>",
        "RCPT TO:<alice@example.org>",
        "DATA",
    ] {
        write!(stream, "{cmd}\r\n")?;
        read_reply(&mut reader)?;
    }
    write!(stream, "{message}.\r\n")?;
    let reply = read_reply(&mut reader)?;
    write!(stream, "QUIT\r\n")?;
    Ok(vec![reply])
}

fn walk(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
