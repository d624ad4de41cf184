#!/usr/bin/env python3
"""Writes the seed corpus and the libFuzzer dictionary of every fuzz target.

Seeds come from the repository, nothing binary is committed: the test messages under
tests/data/eml/ (each wrapped as the target reads its input), the shipped config
conf.d/coid.toml, and protocol lines taken from coid's unit tests (the test each
comes from is named beside it). Run by fuzz/run.sh; by hand:

    fuzz/seeds.py OUT_DIR        # OUT_DIR/corpus/<target>/, OUT_DIR/dict/<target>.dict

Every seed is a valid input on a correct coid: none crashes a target.
"""

import hashlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Messages are cut here: libFuzzer mutates small inputs much faster, and the header
# section (what most targets read) comes first.
MAX_MESSAGE = 64 * 1024
GUID = "0413580b5cf9006b1e38000083ecc375"
SERVER = f"priv/{GUID}/vendor/vendor.dovecot/pvt/server/"
SHARED = f"shared/{GUID}/vendor/vendor.dovecot/pvt/server/"


def messages():
    """(name, bytes) of every test message, cut to MAX_MESSAGE, plus small ones
    from the unit tests."""
    out = []
    for path in sorted((ROOT / "tests/data/eml").rglob("*.eml")):
        name = str(path.relative_to(ROOT / "tests/data/eml")).replace("/", "_")
        out.append((name, path.read_bytes()[:MAX_MESSAGE]))
    # src/push/webpush/payload_tests.rs (CHAT, missing_headers_are_left_out).
    out.append(
        (
            "payload-chat",
            b'From: "Bob B." <Bob@Example.NET>\r\nDate: Sat, 21 Nov 2026 10:17:49 +0100\r\n'
            b"Subject: Hello\r\nMessage-ID: <chat$group.abc.1@example.net>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe\r\n",
        )
    )
    out.append(("payload-other", b"X-Other: 1\r\n\r\n"))
    # src/delivery/stream.rs header_filter_drops_trusted_fields_with_folds.
    out.append(
        (
            "header-filter",
            b"From: a\r\nX-Coid-Folder: evil\r\n\tfolded\r\nx-coid-flags: \\Seen\r\n"
            b"X-Coidless: ok\r\nSubject: s\r\n\r\nX-Coid-Folder: body stays\r\n",
        )
    )
    return out


def crlf(message):
    return re.sub(rb"(?<!\r)\n", b"\r\n", message)


def stuffed(message):
    """CRLF lines, dot-stuffed, ending in CRLF (RFC 5321 section 4.5.2)."""
    body = crlf(message)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", body)


def lmtp_session():
    seeds = {}
    for name, message in messages():
        body = stuffed(message)
        # Lower-case `lhlo`: the target's large limits, so the message is delivered.
        seeds[name] = (
            b"lhlo mx.example.org\r\nMAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=%d\r\n"
            b"RCPT TO:<bob@example.org>\r\nRCPT TO:<carol+temp@example.org>\r\nDATA\r\n"
            % len(body)
            + body
            + b".\r\nQUIT\r\n"
        )
    # src/lmtp/session_tests.rs, upper-case `LHLO`: the small limits.
    seeds["transaction"] = (
        b"LHLO client\r\nMAIL FROM:<a@x> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@y>\r\n"
        b"RCPT TO:<c+tag@y>\r\nDATA\r\nSubject: t\r\n\r\n..dotted\r\nbody\r\n.\r\nQUIT\r\n"
    )
    for i, vector in enumerate([b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r"]):
        seeds[f"smuggling-{i}"] = (
            b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: s\r\n\r\nbefore"
            + vector
            + b"MAIL FROM:<evil@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nsmuggled\r\n.\r\n"
        )
    seeds["order"] = (
        b"EHLO x\r\nMAIL FROM:<a@x>\r\nLHLO x\r\nRCPT TO:<b@y>\r\nDATA\r\n"
        b"MAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nDATA\r\n"
    )
    seeds["size"] = (
        b"LHLO x\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
        + b"x" * 3000
        + b"\r\n.\r\nNOOP\r\n"
    )
    seeds["declared-size"] = b"LHLO x\r\nMAIL FROM:<a@x> SIZE=5000\r\n"
    seeds["long-line"] = (
        b"LHLO x\r\nNOOP "
        + b"a" * 600
        + b"\r\nMAIL FROM:<a@x>\r\nRCPT TO:<1@y>\r\nRCPT TO:<2@y>\r\nRCPT TO:<3@y>\r\nRCPT TO:<4@y>\r\n"
    )
    seeds["null-sender"] = b"LHLO x\r\nMAIL FROM:<>\r\nRSET\r\nMAIL FROM:<a@x>\r\n"
    seeds["orcpt"] = (
        b"LHLO x\r\nMAIL FROM:<a@x> SMTPUTF8\r\nRCPT TO:<b@y> ORCPT=rfc822;b@y\r\n"
        b"RCPT TO:<\xc3\xa9@y>\r\nDATA\r\nX: 1\r\n.leading dot\r\n.\r\nQUIT\r\n"
    )
    return seeds


def lmtp_reply():
    """A selector byte (see fuzz_targets/lmtp_reply.rs), then Dovecot's side."""
    greeting = (
        b"220 mail.example.org Dovecot ready.\r\n250-mail.example.org\r\n250-8BITMIME\r\n"
        b"250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
    )
    mail = b"250 2.1.0 OK\r\n"

    def transaction(verdicts):
        rcpts = b"".join(b"250 2.1.5 OK\r\n" for _ in verdicts)
        data = b"354 OK\r\n" + b"".join(verdicts)
        return mail + rcpts + data

    saved = b"250 2.0.0 <user0@example.org> hTC0KPJvOmhBNwAAd0Dxlw Saved\r\n"
    # src/delivery/lmtp_client.rs parses_replies.
    unknown = b"550 5.1.1 <dave@example.org> User doesn't exist: dave@example.org\r\n"
    temp = b"451 4.3.0 <x> Temporary internal error\r\n"
    quota = b"552 5.2.2 <user1@example.org> Quota exceeded (mailbox for user is full)\r\n"
    seeds = {
        "one": b"0" + greeting + transaction([saved]),
        "three": b"3" + greeting + transaction([saved, temp, quota]),
        "two-targets": b"6" + greeting + transaction([saved]) + transaction([saved]),
        "utf8-8bit": b"\x19" + greeting + transaction([saved]),
        "no-smtputf8": b"8220 ready\r\n250-x\r\n250 PIPELINING\r\n",
        "rcpt-refused": b"1" + greeting + mail + unknown,
        "mail-refused": b"2" + greeting + temp + unknown + unknown + b"250 2.0.0 OK\r\n",
        "garbage": b"1hello\r\n999 no\r\n",
        "bad-greeting": b"1" + temp,
    }
    return seeds


def dict_session():
    """Dovecot's dict client, from src/dict/session_tests.rs and protocol_tests.rs."""
    v3 = b"H3\t2\t0\t\tcoid\n"
    v4 = b"H4\t0\t0\t\tcoid\n"
    base = SERVER + "vendor/vendor.dovecot/coi/config/"
    alice = "alice@example.org"
    seeds = {
        "setmetadata": v3
        + b"B2\talice@example.org\nS2\tpriv/g/a\tactive\nS2\tpriv/g/b\ttab\x01there\nU2\tpriv/g/c\nC2\n",
        "v3-async": v3 + b"B1\tu\nS1\tk\tv\nD1\nB2\nC2\n",
        "v4-round-trip": v4
        + (
            f"B1\t{alice}\t0\nS1\t{base}enabled\tyes\nS1\t{base}message-filter\tactive\nC1\n"
            f"L{base}enabled\t{alice}\nL{base}message-filter\t{alice}\nI9\t0\t{base}\t{alice}\n"
        ).encode(),
        "v4-begin": v4
        + b"B2\talice@example.org\t0\nS2\tpriv/g/a\tv\nV2\tno\nC2\nB3\tu\t60\nS3\tk\tv\nC3\nB4\tu\t0\nD4\n",
        "v4-malformed": v4
        + b"B1\tu\nS1\tk\tv\nC1\nB1\nB1\tu\t0\tx\nB1\tu\tsoon\nB1\tu\t-5\nB1\tu\x01x\t0\nC1\nBx\tu\t0\n",
        "lookups": v3
        + b"Lpriv/g/k\talice@example.org\nI9\t0\tpriv/g/\talice@example.org\nI0\t500\tp/\tu\nLpriv/g/k\n",
        "rollback": v3 + b"B4\tu\nS4\tk4\tv\nB5\tu\nS5\tk5\tv\nR4\nC4\nC5\nC77\nD78\n",
        "limits": v3
        + b"B1\tu\nB2\tu\nB3\tu\nS3\tk\tv\nS1\tk\tv\nC3\nC1\nC2\nB1\tu\nS1\ta\t1\nS1\tb\t2\nS1\tc\t3\nS1\td\t4\nC1\n",
        "atomic": v3 + b"B1\tu\nT1\t1700000000\t0\nS1\tk\tv\nC1\nB2\tu\nA2\tk\t1\nC2\n",
        "bad-lines": v3
        + b"B1\tu\nS1\tk\tbad\x01escape\nS1\tk2\tv\nC1\nLk\x01\tu\nI9\tx\tp\tu\nS9\tk\tv\nU9\tk\nR9\n"
        + b"S1\tk\ttruncated\x01\nS1\tk\tnul\x010\nS1\tk\t\xc3\x28\nC-1\nC99999999999\nA1\tk\tone\n",
        "overlong": v3 + b"B1\tu\nS1\tk\t" + b"x" * 400 + b"\nS1\tk2\tv\nC1\nLk\tu\n",
        "unknown": v3 + b"B1\tu\nX\nLk\tu\n",
        "twice": v4 + v4,
        "bad-hello": b"H4\t0\t0\t\tco\x01x\n",
    }
    return seeds


def rewrite():
    """`<folder>\\t<flags>\\t<create>\\t<separator>` NUL message, or NUL message."""
    seeds = {}
    for name, message in messages():
        seeds[name] = b"\x00" + message
        seeds[name + "-crlf"] = b"\x00" + crlf(message)
    first = messages()[0][1]
    seeds["named-coi"] = b"COI/Chats\t$Chat \\Seen\t1\t.\x00" + first
    seeds["named-utf8"] = "B\u00fcro/=?x?=\t$Chat bad\"flag\t0\t/\x00".encode() + first
    seeds["named-inbox-flags"] = b"\t\\Flagged $Chat\t0\t/\x00" + first
    return seeds


def push_payload():
    return {name: message for name, message in messages()}


def metadata():
    """`<dict key>` TAB `<value>` or `<dict key>` (NIL); from src/dict/attributes_tests.rs,
    webpush_tests.rs, src/push/webpush/subscription_tests.rs and token.rs's tests."""
    coi = SERVER + "vendor/vendor.dovecot/coi/config/"
    webpush = SERVER + "vendor/vendor.dovecot/webpush/"
    p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    auth = "BTBZMqHH6r4Tts7J_aSIgg"
    subscription = (
        '{"client":"OX COI","device":"phone","msgtype":"chat","extra":1,'
        f'"resource":{{"endpoint":"https://push.example/x","keys":{{"p256dh":"{p256dh}","auth":"{auth}"}}}}}}'
    )
    seeds = {
        "enabled": f"{coi}enabled\tyes",
        "enabled-nil": f"{coi}enabled",
        "enabled-no": f"{coi}enabled\tno",
        "filter": f"{coi}message-filter\tactive",
        "filter-seen": f"{coi}message-filter\tseen",
        "filter-bad": f"{coi}message-filter\tsometimes",
        "root": f"{coi}mailbox-root\tElsewhere",
        "comment": f"{SERVER}comment\thello",
        "subscribe": f"{webpush}subscriptions/31754ee7-d3ee-4226\t{subscription}",
        "subscribe-any": f"{webpush}subscriptions/abcdefghij\t"
        + subscription.replace('"chat"', '"any"').replace("https://push.example/x", "https://[2001:db8::1]:8443/p?q=1"),
        "unsubscribe": f"{webpush}subscriptions/31754ee7-d3ee-4226",
        "validate": f"{webpush}subscriptions/31754ee7-d3ee-4226/validate\ttoken",
        "vapid": f"{webpush}vapid\tkey",
        "token": f"priv/{GUID}/devicetoken\topenpgp:wcFMA+abc/==",
        "token-server": f"{SERVER}devicetoken\tfcm-chat.delta:abc123",
        "token-nil": f"priv/{GUID}/devicetoken",
        "token-bad": f"priv/{GUID}/devicetoken\tt\u00f6k\u00e9n",
        "shared-admin": f"{SHARED}admin\tmailto:postmaster@example.org",
        "shared-deltachat": f"{SHARED}vendor/deltachat/irohrelay\thttps://iroh.example.org",
        "mailbox": f"priv/{GUID}/comment\tper mailbox",
        "internal": f"{SERVER}vendor/vendor.dovecot/pvt/sieve\tx",
    }
    return {name: text.encode() for name, text in seeds.items()}


def config():
    text = (ROOT / "conf.d/coid.toml").read_bytes()
    seeds = {"coid.toml": text}
    # Each section of the shipped file on its own.
    for i, section in enumerate(re.split(rb"(?m)^(?=\[)", text)):
        if section.strip():
            seeds[f"section-{i}"] = section
    # src/config/validate.rs every_problem_is_reported, unknown_keys_are_refused.
    seeds["problems"] = (
        b'[lmtp]\ntcp = ["nope"]\nunix_socket = "coid/lmtp"\nmax_line_length = 10\n[coi]\n'
        b'message_filter = "sometimes"\n[delivery]\nbackend = "imap"\n[dict]\nsocket = "run/dict"\n'
        b'socket_mode = "999"\nmax_transactions = 0\n'
    )
    seeds["typo"] = b"[lmtp]\nmax_conections = 3\n"
    return seeds


DICTS = {
    "lmtp_session": [
        b"LHLO ", b"MAIL FROM:<", b"RCPT TO:<", b"DATA\r\n", b"\r\n.\r\n", b"\r\n..",
        b"RSET\r\n", b"NOOP\r\n", b"QUIT\r\n", b" BODY=8BITMIME", b" BODY=7BIT",
        b" SMTPUTF8", b" SIZE=", b" ORCPT=rfc822;", b"BDAT ", b"EHLO ", b"HELO ",
        b"STARTTLS", b"VRFY", b"AUTH", b" RET=FULL", b" ENVID=", b" NOTIFY=NEVER", b">\r\n",
    ],
    "lmtp_reply": [
        b"220 ", b"250-", b"250 ", b"354 ", b"451 ", b"452 ", b"550 ", b"552 ", b"2.1.5 ",
        b"2.0.0 ", b"4.3.0 ", b"5.1.1 ", b"8BITMIME", b"SMTPUTF8", b"PIPELINING", b"\r\n",
    ],
    "dict_session": [
        b"H3\t2\t0\t\tcoid\n", b"H4\t0\t0\t\tcoid\n", b"\x01t", b"\x01n", b"\x01r", b"\x011",
        b"\x010", b"\t0\n", b"priv/", b"shared/", SERVER.encode(), SHARED.encode(),
        b"vendor/vendor.dovecot/coi/config/", b"devicetoken", b"\tyes", b"I9\t0\t",
    ],
    "rewrite": [
        b"X-Coid-Folder:", b"X-Coid-Flags:", b"X-Coid-Create:", b"x-coid-", b"\r\n\t",
        b"\r\n ", b"\r\n\r\n", b"\n\n", b"Chat-Version: 1.0\r\n", b"Message-ID: <chat$",
        b"<chat$group.", b"References: <", b"Chat-Group-ID: ", b"Subject: [...]\r\n",
        b'To: "hidden-recipients": ;\r\n', b"Chat-Is-Post-Message: 1\r\n",
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"',
        b"Content-Type: multipart/report; report-type=disposition-notification",
        b"=?UTF-8?B?", b"@localhost>",
    ],
    "push_payload": [
        b"From: ", b"Subject: ", b"Date: ", b"Message-ID: <", b"Chat-Version: 1.0\r\n",
        b"Content-Type: text/plain; charset=", b"Content-Transfer-Encoding: ",
        b"quoted-printable", b"base64", b"=?UTF-8?Q?", b"=?UTF-8?B?", b"\r\n\r\n", b"\\u0000",
    ],
    "metadata": [
        SERVER.encode(), SHARED.encode(), b"vendor/vendor.dovecot/coi/config/",
        b"vendor/vendor.dovecot/webpush/subscriptions/", b"/validate", b"devicetoken",
        b"enabled", b"message-filter", b"mailbox-root", b"active", b"\tyes", b'"msgtype"',
        b'"endpoint":"https://', b'"p256dh"', b'"auth"', b"openpgp:",
    ],
}


def config_dict():
    """Every section and key of the shipped config."""
    text = (ROOT / "conf.d/coid.toml").read_text()
    words = set()
    for line in text.splitlines():
        line = line.lstrip("# ")
        if m := re.match(r"^(\[[a-z_.]+\])", line):
            words.add(m.group(1) + "\n")
        elif m := re.match(r"^([a-z_]+) = ", line):
            words.add(m.group(1) + " = ")
    return [w.encode() for w in sorted(words)] + [b'"', b"[", b"]", b"true", b"false"]


def dict_entry(word):
    escaped = "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}" for b in word
    )
    return f'"{escaped}"'


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "fuzz")
    targets = {
        "lmtp_session": lmtp_session(),
        "lmtp_reply": lmtp_reply(),
        "dict_session": dict_session(),
        "rewrite": rewrite(),
        "push_payload": push_payload(),
        "metadata": metadata(),
        "config": config(),
    }
    DICTS["config"] = config_dict()
    for target, seeds in targets.items():
        corpus = out / "corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            digest = hashlib.sha1(data).hexdigest()[:8]
            (corpus / f"seed-{name}-{digest}").write_bytes(data)
        dicts = out / "dict"
        dicts.mkdir(parents=True, exist_ok=True)
        (dicts / f"{target}.dict").write_text(
            "".join(dict_entry(word) + "\n" for word in DICTS[target])
        )


if __name__ == "__main__":
    main()
