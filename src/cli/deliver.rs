//! `coid deliver` (LDA mode: one message from standard input through the whole
//! pipeline, exit code per sysexits) and `coid explain` (the same decisions as JSON,
//! nothing delivered).

use std::path::Path;

use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::build::{build_pipeline, load_config};
use super::exit;
use crate::classify::Class;
use crate::config::Config;
use crate::lmtp::{Envelope, Recipient, Reply};
use crate::policy::Explained;
use crate::spool::{SpoolWriter, Spooled};

/// `coid deliver`.
pub fn deliver(config: &Path, from: String, rcpts: Vec<String>) -> u8 {
    run(config, from, rcpts, Mode::Deliver)
}

/// `coid explain`.
pub fn explain(config: &Path, from: String, rcpts: Vec<String>) -> u8 {
    run(config, from, rcpts, Mode::Explain)
}

#[derive(Clone, Copy)]
enum Mode {
    Deliver,
    Explain,
}

fn run(config_path: &Path, from: String, rcpts: Vec<String>, mode: Mode) -> u8 {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match super::printed(super::build::runtime(
        tokio::runtime::Builder::new_current_thread(),
    )) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let envelope = Envelope {
        mail_from: from,
        body_8bit: true,
        smtputf8: false,
        declared_size: None,
        recipients: rcpts.into_iter().map(Recipient::new).collect(),
    };
    runtime.block_on(async move {
        match mode {
            Mode::Deliver => deliver_async(&config, &envelope).await,
            Mode::Explain => explain_async(&config, &envelope).await,
        }
    })
}

async fn read_stdin(config: &Config) -> Result<Spooled, u8> {
    let spool_dir = config.spool_dir();
    if let Err(err) = std::fs::create_dir_all(&spool_dir) {
        eprintln!("coid: cannot create {}: {err}", spool_dir.display());
        return Err(exit::TEMPFAIL);
    }
    let mut writer = SpoolWriter::new(config.lmtp.spool_threshold, &spool_dir);
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = stdin.read(&mut buf).await.map_err(|err| {
            eprintln!("coid: reading the message: {err}");
            exit::TEMPFAIL
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > config.lmtp.max_message_size {
            eprintln!("coid: message larger than lmtp.max_message_size");
            return Err(exit::DATAERR);
        }
        writer
            .write(buf.get(..n).unwrap_or_default())
            .await
            .map_err(|err| {
                eprintln!("coid: spooling the message: {err}");
                exit::TEMPFAIL
            })?;
    }
    writer.finish().await.map_err(|err| {
        eprintln!("coid: spooling the message: {err}");
        exit::TEMPFAIL
    })
}

/// [`build_pipeline`] on a blocking thread: opening the store blocks (PostgreSQL's
/// blocking client refuses to run on an async thread).
async fn pipeline_off_thread(
    config: &Config,
) -> Result<
    (
        std::sync::Arc<crate::pipeline::Pipeline>,
        crate::store::Store,
    ),
    u8,
> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || build_pipeline(&config))
        .await
        .unwrap_or_else(|err| {
            eprintln!("coid: start-up task failed: {err}");
            Err(exit::SOFTWARE)
        })
}

async fn deliver_async(config: &Config, envelope: &Envelope) -> u8 {
    let (pipeline, _) = match pipeline_off_thread(config).await {
        Ok(built) => built,
        Err(code) => return code,
    };
    let body = match read_stdin(config).await {
        Ok(body) => body,
        Err(code) => return code,
    };
    let (replies, after) = pipeline.process(envelope, &body).await;
    drop(after);
    // The pushes go to the queue; `coid serve` sends them (within its poll interval).
    pipeline.flush_pushes().await;
    for (rcpt, reply) in envelope.recipients.iter().zip(&replies) {
        eprintln!("{}: {reply}", rcpt.address);
    }
    exit_code(replies.as_slice())
}

/// The worst outcome decides: any temporary failure → 75, else a permanent one → 67
/// for unknown users (RFC 3463 X.1.1) or 65, else 0.
pub fn exit_code(replies: &[Reply]) -> u8 {
    if replies.iter().any(Reply::is_temporary) {
        exit::TEMPFAIL
    } else if let Some(perm) = replies.iter().find(|r| r.is_permanent()) {
        if perm.enhanced[1] == 1 && perm.enhanced[2] == 1 {
            exit::NOUSER
        } else {
            exit::DATAERR
        }
    } else {
        exit::OK
    }
}

#[derive(Serialize)]
struct Explanation {
    class: Class,
    signal: crate::classify::Signal,
    #[serde(skip_serializing_if = "Option::is_none")]
    group_id: Option<String>,
    recipients: Vec<Explained>,
}

async fn explain_async(config: &Config, envelope: &Envelope) -> u8 {
    let (pipeline, _) = match pipeline_off_thread(config).await {
        Ok(built) => built,
        Err(code) => return code,
    };
    let body = match read_stdin(config).await {
        Ok(body) => body,
        Err(code) => return code,
    };
    let decisions = match pipeline.decide(envelope, &body).await {
        Ok(decisions) => decisions,
        Err(err) => {
            eprintln!("coid: {err}");
            return exit::TEMPFAIL;
        }
    };
    let out = Explanation {
        class: decisions.classification.class,
        signal: decisions.classification.signal,
        group_id: decisions.classification.group_id.clone(),
        recipients: decisions
            .recipients
            .iter()
            .map(|d| Explained::new(&d.rcpt, &d.evaluation))
            .collect(),
    };
    match serde_json::to_string(&out) {
        Ok(json) => {
            println!("{json}");
            exit::OK
        }
        Err(err) => {
            eprintln!("coid: {err}");
            exit::SOFTWARE
        }
    }
}
