//! Unit tests of the dict wire protocol: the lines Dovecot 2.3.19.1 was seen sending,
//! replies byte for byte, escaping both ways, and hostile input.

use super::*;

fn parsed(line: &str) -> Command {
    parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

const KEY: &str = "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/coi/config/enabled";

#[test]
fn parses_what_dovecot_sends() {
    assert_eq!(
        parsed("H3\t2\t0\t\tcoid"),
        Command::Hello {
            major: 3,
            minor: 2,
            value_type: 0,
            dict: "coid".into()
        }
    );
    assert_eq!(
        parsed(&format!("L{KEY}\talice@example.org")),
        Command::Lookup {
            key: KEY.into(),
            username: "alice@example.org".into()
        }
    );
    assert_eq!(
        parsed("I9\t0\tpriv/g/\talice@example.org"),
        Command::Iterate {
            flags: IterFlags(9),
            max_rows: 0,
            path: "priv/g/".into(),
            username: "alice@example.org".into()
        }
    );
    assert_eq!(
        parsed("B12\talice@example.org"),
        Command::Begin {
            id: 12,
            username: "alice@example.org".into()
        }
    );
    assert_eq!(
        parsed("S2\tpriv/g/comment\ttab\x01there"),
        Command::Set {
            id: 2,
            key: "priv/g/comment".into(),
            value: "tab\there".into()
        }
    );
    assert_eq!(
        parsed("U3\tpriv/g/comment"),
        Command::Unset {
            id: 3,
            key: "priv/g/comment".into()
        }
    );
    assert_eq!(
        parsed("C1"),
        Command::Commit {
            id: 1,
            async_: false
        }
    );
    assert_eq!(
        parsed("D1"),
        Command::Commit {
            id: 1,
            async_: true
        }
    );
    assert_eq!(parsed("R7"), Command::Rollback { id: 7 });
    assert_eq!(parsed("A1\tk\t-5"), Command::AtomicInc { id: 1 });
    assert_eq!(parsed("T1\t1700000000\t5"), Command::Timestamp { id: 1 });
    // The username is optional on the wire (Dovecot's server accepts its absence).
    assert_eq!(
        parsed("Lk"),
        Command::Lookup {
            key: "k".into(),
            username: String::new()
        }
    );
}

#[test]
fn escapes_round_trip() {
    let text = "a\r\nb\x01c\td";
    let mut out = Vec::new();
    escape_into(text, &mut out);
    assert_eq!(out, b"a\x01r\x01nb\x011c\x01td");
    assert_eq!(unescape(&out).as_deref(), Ok(text));
}

#[test]
fn iteration_flags() {
    assert_eq!(IterFlags(9).depth(), Depth::All);
    assert!(IterFlags(9).no_value());
    assert_eq!(IterFlags(0).depth(), Depth::Children);
    assert_eq!(IterFlags(0x10).depth(), Depth::Exact);
    assert!(IterFlags(4).sort_by_value());
}

#[test]
fn replies_byte_for_byte() {
    let cases: [(Reply, &[u8]); 8] = [
        (Reply::Value("a\tb".into()), b"Oa\x01tb\n"),
        (Reply::NotFound, b"N\n"),
        (Reply::Failed("no".into()), b"Fno\n"),
        (
            Reply::Row {
                key: "priv/g/x".into(),
                value: None,
            },
            b"Opriv/g/x\t\n",
        ),
        (Reply::EndOfRows, b"\n"),
        (
            Reply::Committed {
                id: 4,
                async_: false,
            },
            b"O4\n",
        ),
        (
            Reply::Committed {
                id: 4,
                async_: true,
            },
            b"AO4\n",
        ),
        (
            Reply::CommitFailed {
                id: Some(6),
                async_: false,
                error: "invalid\nvalue".into(),
            },
            b"F6\tinvalid\x01nvalue\n",
        ),
    ];
    for (reply, bytes) in cases {
        let mut out = Vec::new();
        reply.encode(&mut out);
        assert_eq!(out, bytes, "{reply:?}");
    }
}

#[test]
fn hostile_lines_are_errors_not_panics() {
    for (line, reason) in [
        (&b""[..], "unknown command"),
        (b"X1", "unknown command"),
        (b"\xff\xfe", "unknown command"),
        (b"S1\tk\tbad\x01escape", "bad escape"),
        (b"S1\tk\ttruncated\x01", "bad escape"),
        (b"S1\tk\tnul\x010", "NUL in a field"),
        (b"S1\tk\traw\x00nul", "NUL in a field"),
        (b"S1\tk\t\xc3\x28", "not UTF-8"),
        (b"S1\tk", "wrong number of fields"),
        (b"S1\tk\tv\textra", "wrong number of fields"),
        (b"Sx\tk\tv", "bad transaction id"),
        (b"C", "bad transaction id"),
        (b"C-1", "bad transaction id"),
        (b"C99999999999", "bad transaction id"),
        (b"I9\tmany\tp\tu", "bad number"),
        (b"A1\tk\tone", "bad number"),
        (b"H3\t2", "wrong number of fields"),
    ] {
        let err = parse(line).expect_err("must fail");
        assert_eq!(err.reason, reason, "{:?}", String::from_utf8_lossy(line));
    }
    let err = parse(b"S42\tk\tbad\x01x").expect_err("bad escape");
    assert_eq!((err.command, err.id), (b'S', Some(42)));
}

#[test]
fn peek_reads_the_head_of_a_cut_line() {
    assert_eq!(peek(b"S17\tpriv/g/very-long"), (b'S', Some(17)));
    assert_eq!(peek(b"Lpriv/g/x"), (b'L', None));
    assert_eq!(peek(b""), (0, None));
}
