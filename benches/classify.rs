//! Micro-benchmark: what coid's per-message decision costs in CPU, in process, without
//! sockets. For three messages (a plain email, a COI chat, a real encrypted Delta Chat
//! message from `tests/data/eml/deltachat/`) it times, as `Pipeline::decide` does them:
//! classify (`classify_raw` on the header section), parse (mail-parser, whole message,
//! which the policy needs), evaluate (the default `conf.d/policy.sieve`, one recipient
//! with COI enabled and message filter `active`) and all three together.
//! Not measured here: the SQLite settings lookup and the delivery itself (see `e2e`).
//!
//! Plain loop, no framework: per measurement a short warm-up, then 7 batches of about
//! 100 ms each; the median batch is reported as µs per message.

#[path = "shared/timing.rs"]
mod timing;

use std::hint::black_box;

use coid::classify::{Classification, classify_raw};
use coid::policy::{Explained, Facts, Policy};
use coid::spool::header_end;
use coid::store::{CoiSettings, MessageFilter};
use mail_parser::MessageParser;
use timing::{BATCHES, micros, per_call};

const RCPT: &str = "alice@example.org";
const MAIL_FROM: &str = "bob@example.net";

const PLAIN_EMAIL: &str = "Return-Path: <bob@example.net>\r\n\
Received: from mail.example.net (mail.example.net [192.0.2.25])\r\n\
\tby mx.example.org (Postfix) with ESMTPS id 4F3A2C0123\r\n\
\tfor <alice@example.org>; Fri, 21 Nov 2025 10:00:00 +0000 (UTC)\r\n\
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=mail;\r\n\
\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n\
\tb=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\n\
From: Bob <bob@example.net>\r\n\
To: Alice <alice@example.org>\r\n\
Subject: Minutes of Thursday's meeting\r\n\
Date: Fri, 21 Nov 2025 10:00:00 +0000\r\n\
Message-ID: <20251121100000.4F3A2C0123@mail.example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Hi Alice,\r\n\
\r\n\
here are the minutes. Next meeting is on Thursday at ten.\r\n\
\r\n\
Bob\r\n";

const COI_CHAT: &str = "Return-Path: <bob@example.net>\r\n\
Received: from mail.example.net (mail.example.net [192.0.2.25])\r\n\
\tby mx.example.org (Postfix) with ESMTPS id 5A1B2C0456\r\n\
\tfor <alice@example.org>; Fri, 21 Nov 2025 10:00:01 +0000 (UTC)\r\n\
From: Bob <bob@example.net>\r\n\
To: Alice <alice@example.org>\r\n\
Subject: Chat: Lunch?\r\n\
Date: Fri, 21 Nov 2025 10:00:01 +0000\r\n\
Message-ID: <chat$1f3c9a.4d2e@example.net>\r\n\
Chat-Version: 1.0\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Lunch at noon?\r\n";

fn main() {
    let policy = Policy::load("", 10_000).expect("the built-in default policy compiles");
    let settings = CoiSettings {
        enabled: true,
        message_filter: MessageFilter::Active,
        mailbox_root: "COI".into(),
    };
    let deltachat_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/eml/deltachat/encrypted-1to1.eml"
    );
    let deltachat = std::fs::read(deltachat_path).expect("reading the Delta Chat fixture");
    let messages: [(&str, &[u8]); 3] = [
        ("plain email", PLAIN_EMAIL.as_bytes()),
        ("COI chat", COI_CHAT.as_bytes()),
        ("Delta Chat encrypted 1:1", &deltachat),
    ];

    println!("coid classify + policy cost per message (µs; median of {BATCHES} batches)");
    println!(
        "{:<26} {:>6} {:>9} {:>9} {:>9} {:>9}   decision",
        "message", "bytes", "classify", "parse", "evaluate", "all"
    );
    for (name, raw) in messages {
        let header = header_section(raw);
        let classification = classify_raw(header);
        let facts = facts(&classification, &settings);
        let parsed = MessageParser::new()
            .parse(raw)
            .expect("the benchmark messages parse");
        let decision = Explained::new(RCPT, &policy.evaluate(parsed.clone(), &facts));

        let classify = per_call(|| {
            black_box(classify_raw(black_box(header_section(raw))));
        });
        let parse = per_call(|| {
            black_box(MessageParser::new().parse(black_box(raw)));
        });
        let evaluate = per_call(|| {
            black_box(policy.evaluate(black_box(parsed.clone()), &facts));
        });
        let all = per_call(|| {
            let classification = classify_raw(header_section(black_box(raw)));
            let parsed = MessageParser::new().parse(raw).unwrap_or_default();
            black_box(policy.evaluate(parsed, &self::facts(&classification, &settings)));
        });
        println!(
            "{name:<26} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}   {} {}",
            raw.len(),
            micros(classify),
            micros(parse),
            micros(evaluate),
            micros(all),
            classification.class.as_str(),
            serde_json::to_string(&decision).expect("a decision serialises"),
        );
    }
}

/// The header section, as the pipeline cuts it for classification.
fn header_section(raw: &[u8]) -> &[u8] {
    raw.get(..header_end(raw).unwrap_or(raw.len()))
        .unwrap_or(raw)
}

fn facts<'a>(classification: &'a Classification, settings: &'a CoiSettings) -> Facts<'a> {
    Facts {
        mail_from: MAIL_FROM,
        rcpt: RCPT,
        classification,
        settings,
    }
}
