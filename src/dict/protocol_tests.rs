//! Unit tests of the dict wire protocol: the lines Dovecot 2.3.19.1 was seen sending,
//! the ones Dovecot 2.4.1's client writes, replies byte for byte, escaping both ways,
//! and hostile input.

use super::*;

fn parsed(line: &str) -> Command {
    parse(line.as_bytes(), Version::V3).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn parsed_v4(line: &str) -> Command {
    parse(line.as_bytes(), Version::V4).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

const KEY: &str = "priv/0413580b5cf9006b1e38000083ecc375/vendor/vendor.dovecot/pvt/server/vendor/vendor.dovecot/coi/config/enabled";

#[test]
fn parses_what_dovecot_sends() {
    assert_eq!(
        parse_hello(b"H3\t2\t0\t\tcoid"),
        Ok(Hello {
            major: 3,
            minor: 2,
            value_type: 0,
            dict: "coid".into()
        })
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
            username: "alice@example.org".into(),
            expire_secs: 0
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
    assert_eq!(parsed("V1\tyes"), Command::HideLogValues { id: 1 });
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
fn parses_what_dovecot_2_4_sends() {
    let hello = parse_hello(b"H4\t0\t0\t\tcoid").expect("2.4 handshake");
    assert_eq!(
        (
            hello.major,
            hello.minor,
            hello.value_type,
            hello.dict.as_str()
        ),
        (4, 0, 0, "coid")
    );
    assert_eq!(Version::from_major(hello.major), Some(Version::V4));
    assert_eq!(
        parsed_v4("B3\talice@example.org\t0"),
        Command::Begin {
            id: 3,
            username: "alice@example.org".into(),
            expire_secs: 0
        }
    );
    assert_eq!(
        parsed_v4("B4\tbob\t3600"),
        Command::Begin {
            id: 4,
            username: "bob".into(),
            expire_secs: 3600
        }
    );
    // The rest reads as in 2.3.
    assert_eq!(
        parsed_v4(&format!("L{KEY}\talice@example.org")),
        Command::Lookup {
            key: KEY.into(),
            username: "alice@example.org".into()
        }
    );
    assert_eq!(parsed_v4("I9\t0\tpriv/g/\tu"), parsed("I9\t0\tpriv/g/\tu"));
    assert_eq!(
        parsed_v4("C3"),
        Command::Commit {
            id: 3,
            async_: false
        }
    );
    assert_eq!(parsed_v4("V3\tno"), Command::HideLogValues { id: 3 });
}

#[test]
fn begin_fields_depend_on_the_version() {
    for (line, version, reason) in [
        // 2.3 has no expiry field; 2.4 always sends it.
        (&b"B1\tu\t0"[..], Version::V3, "wrong number of fields"),
        (b"B1\tu", Version::V4, "wrong number of fields"),
        (b"B1", Version::V4, "wrong number of fields"),
        (b"B1\tu\t0\textra", Version::V4, "wrong number of fields"),
        (b"B1\tu\tsoon", Version::V4, "bad number"),
        (b"B1\tu\t-1", Version::V4, "bad number"),
        (b"B1\tu\t99999999999", Version::V4, "bad number"),
        (b"Bx\tu\t0", Version::V4, "bad transaction id"),
        (b"B1\tu\x01x\t0", Version::V4, "bad escape"),
        // `D` is gone in 2.4.
        (b"D1", Version::V4, "unknown command"),
        (b"V1\tmaybe", Version::V4, "bad boolean"),
    ] {
        let err = parse(line, version).expect_err("must fail");
        assert_eq!(err.reason, reason, "{:?}", String::from_utf8_lossy(line));
    }
    let err = parse(b"B7\tu\tsoon", Version::V4).expect_err("bad expiry");
    assert_eq!((err.command, err.id), (b'B', Some(7)));
}

#[test]
fn versions_by_major() {
    assert_eq!(Version::from_major(3), Some(Version::V3));
    assert_eq!(Version::from_major(4), Some(Version::V4));
    for major in [0, 2, 5, u32::MAX] {
        assert_eq!(Version::from_major(major), None, "{major}");
    }
    assert!(Version::V3.knows(b'D') && !Version::V4.knows(b'D'));
    assert!(Version::V4.knows(b'V') && Version::V3.knows(b'V'));
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
        let err = parse(line, Version::V3).expect_err("must fail");
        assert_eq!(err.reason, reason, "{:?}", String::from_utf8_lossy(line));
    }
    for (line, reason) in [
        (&b""[..], "not a handshake"),
        (b"L3\t2\t0\t\tcoid", "not a handshake"),
        (b"H3\t2", "wrong number of fields"),
        (b"Hx\t2\t0\t\tcoid", "bad number"),
        (b"H4\t0\t0\t\tco\x01x", "bad escape"),
    ] {
        let err = parse_hello(line).expect_err("must fail");
        assert_eq!(err.reason, reason, "{:?}", String::from_utf8_lossy(line));
    }
    let err = parse(b"S42\tk\tbad\x01x", Version::V3).expect_err("bad escape");
    assert_eq!((err.command, err.id), (b'S', Some(42)));
}

#[test]
fn peek_reads_the_head_of_a_cut_line() {
    assert_eq!(peek(b"S17\tpriv/g/very-long"), (b'S', Some(17)));
    assert_eq!(peek(b"Lpriv/g/x"), (b'L', None));
    assert_eq!(peek(b""), (0, None));
}
