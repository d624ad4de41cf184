#!/usr/bin/env python3
"""The client side of packaging/check-dovecot24-live.sh (python3 stdlib only).

  stand-in PORT_FILE RECORD  A stand-in for the Delta Chat notification service and a
                             Web Push endpoint on 127.0.0.1: answers every POST with
                             200, appends {"path", "body"} as one JSON line to RECORD,
                             and writes the port it got to PORT_FILE once it listens.
  check OPTIONS              The checks, against Dovecot 2.4's IMAP (whose METADATA
                             goes through coid's dict socket) and coid's LMTP; each
                             prints "ok: ..." or exits 1 with "FAILED: ...".

IMAP is spoken over a raw socket (imaplib knows neither METADATA nor LITERAL+), and
the commands are exactly what Delta Chat and COI clients send.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The server entries Delta Chat reads after login, byte for byte as its core (the
# Rust library behind every Delta Chat app) sends them.
DELTACHAT_GETMETADATA = (
    'GETMETADATA "" (/shared/comment /shared/admin /shared/vendor/deltachat/irohrelay '
    "/shared/vendor/deltachat/turn /shared/vendor/deltachat/maxsmtprecipients "
    "/shared/vendor/deltachat/appversions)"
)
COI = "/private/vendor/vendor.dovecot/coi/config"
WEBPUSH_SUBSCRIPTIONS = "/private/vendor/vendor.dovecot/webpush/subscriptions"
# RFC 8291 §5's user agent keys: valid P-256 point and 16-byte secret.
P256DH = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"


class Failed(Exception):
    pass


def ok(text):
    print(f"   ok: {text}", flush=True)


def expect(condition, text):
    if not condition:
        raise Failed(text)


# ---------------------------------------------------------------- stand-in


def stand_in(port_file, record):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            line = {"path": self.path, "body": body.decode("latin-1")}
            with open(record, "a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):
            sys.stderr.write("stand-in: " + fmt % args + "\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file + ".tmp").write_text(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


def posts(record, prefix):
    """The bodies POSTed to paths starting with prefix, in order."""
    try:
        lines = Path(record).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [p["body"] for p in map(json.loads, lines) if p["path"].startswith(prefix)]


# ---------------------------------------------------------------- IMAP

TOKEN = re.compile(rb'NIL|"(?:[^"\\]|\\.)*"|\(|\)|[^\s()"]+', re.S)


class Imap:
    """One IMAP connection; literals in responses are folded into quoted strings."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.tag = 0
        self.greeting = self.line()

    def line(self):
        """One logical response line, each {n} literal replaced by a quoted string."""
        out = b""
        while True:
            raw = self.file.readline()
            expect(raw.endswith(b"\r\n"), f"IMAP connection closed after {out + raw!r}")
            raw = raw[:-2]
            literal = re.search(rb"\{(\d+)\}$", raw)
            if not literal:
                return (out + raw).decode("utf-8", "replace")
            data = self.file.read(int(literal.group(1)))
            quoted = b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            out += raw[: literal.start()] + quoted

    def command(self, text):
        """Sends one command (str or bytes, may hold LITERAL+ literals); returns
        (status, untagged lines, tagged line)."""
        self.tag += 1
        tag = f"c{self.tag}"
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendall(tag.encode() + b" " + data + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return line.split(" ", 2)[1], untagged, line
            untagged.append(line)

    def ok(self, text):
        status, untagged, tagged = self.command(text)
        shown = text if isinstance(text, str) else repr(text)
        expect(status == "OK", f"{shown}\n  answered: {tagged}\n  untagged: {untagged}")
        return untagged

    def metadata(self, text):
        """GETMETADATA's entries as {entry: value or None (NIL)}."""
        entries = {}
        for line in self.ok(text):
            tokens = [t.decode() for t in TOKEN.findall(line.encode())]
            if tokens[:2] != ["*", "METADATA"]:
                continue
            expect(tokens[3] == "(" and tokens[-1] == ")", f"odd METADATA line: {line}")
            pairs = tokens[4:-1]
            for name, value in zip(pairs[::2], pairs[1::2]):
                if value == "NIL":
                    value = None
                elif value.startswith('"'):
                    value = re.sub(r"\\(.)", r"\1", value[1:-1])
                entries[name.lower()] = value
        return entries


def literal_plus(prefix, value, suffix):
    """A command with value as a LITERAL+ literal: no wait for a continuation."""
    data = value.encode() if isinstance(value, str) else value
    return prefix.encode() + b"{%d+}\r\n" % len(data) + data + suffix.encode()


def device_token():
    """A token shaped like Delta Chat's: "openpgp:" and base64 (of random bytes here)."""
    return "openpgp:" + base64.b64encode(os.urandom(300)).decode()


def token_id(token):
    return hashlib.sha256(token.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- checks


def coid_cli(args, *words):
    run = subprocess.run(
        [args.coid, *words[:1], "--config", args.coid_config, *words[1:]],
        capture_output=True, text=True, timeout=30,
    )
    expect(run.returncode == 0, f"coid {' '.join(words)}: exit {run.returncode}: {run.stderr}")
    return run.stdout


def check_capability(imap, args):
    """The 2.4 snippet's imap_capability boolean list adds coid's capabilities to
    Dovecot's defaults (METADATA: imap_metadata; COI, WEBPUSH, XDELTAPUSH: coid's
    entries); Delta Chat only registers a token when it sees XDELTAPUSH or
    maxsmtprecipients."""
    status, untagged, tagged = imap.command("CAPABILITY")
    caps = set()
    for line in untagged:
        if line.startswith("* CAPABILITY "):
            caps.update(line.split()[2:])
    missing = [c for c in args.capability if c not in caps]
    expect(status == "OK" and not missing,
           f"CAPABILITY after login lacks {missing}: {sorted(caps)}")
    ok(f"CAPABILITY after login lists {' '.join(args.capability)}")


def check_deltachat_getmetadata(imap, args):
    """Delta Chat's exact server-entry GETMETADATA gets OK and the values coid
    serves; Dovecot 2.4 passes the /shared/vendor/deltachat/ entries through to
    coid's dict. (/shared/comment and /shared/admin it answers itself, from
    mail_server_comment and mail_server_admin, without asking the dict: NIL here.)"""
    entries = imap.metadata(DELTACHAT_GETMETADATA)
    want = {
        "/shared/comment": None,
        "/shared/admin": None,
        "/shared/vendor/deltachat/irohrelay": None,
        "/shared/vendor/deltachat/turn": None,
        "/shared/vendor/deltachat/maxsmtprecipients": "1000",
        "/shared/vendor/deltachat/appversions": None,
    }
    expect(entries == want, f"Delta Chat's GETMETADATA answered {entries}, want {want}")
    ok("Delta Chat's GETMETADATA answers OK: maxsmtprecipients 1000, the rest NIL")
    # coid, not Dovecot, answered (debug line per server entry read through the dict).
    reads = [line for line in Path(args.coid_log).read_text().splitlines()
             if "server entry read" in line]
    for entry, found in [("/shared/vendor/deltachat/maxsmtprecipients", "true"),
                         ("/shared/vendor/deltachat/turn", "false")]:
        field = re.compile(rf'entry="?{re.escape(entry)}"?(\s|$)')
        expect(any(field.search(line) and f"found={found}" in line for line in reads),
               f"coid's log has no 'server entry read' with entry={entry} found={found}: {reads}")
    ok("coid's log shows the lookups came through the dict (server entry read ... found=)")
    for entry in ["/shared/vendor/deltachat/maxsmtprecipients", "/shared/comment"]:
        status, _, tagged = imap.command(f'SETMETADATA "" ({entry} "5")')
        expect(status == "NO", f"SETMETADATA {entry}: want NO (read-only), got {tagged}")
    ok("SETMETADATA on the read-only server entries gets NO")


def check_devicetokens(imap, args):
    """Delta Chat's token registration through Dovecot 2.4's dict client: quoted
    and LITERAL+ values arrive byte for byte (the dict protocol escapes them),
    refusals come back to the client as NO, tokens are never read back, and coid
    stores exactly one per distinct token."""
    tok_a, tok_b = args.tokens
    imap.ok(f'SETMETADATA "INBOX" (/private/devicetoken "{tok_a}")')
    ok("SETMETADATA INBOX /private/devicetoken, quoted: OK")
    imap.ok(literal_plus('SETMETADATA "INBOX" (/private/devicetoken ', tok_b, ")"))
    ok("SETMETADATA INBOX /private/devicetoken, LITERAL+ {N+}: OK")
    imap.ok(f'SETMETADATA "INBOX" (/private/devicetoken "{tok_a}")')
    imap.ok(f'SETMETADATA "" (/private/devicetoken "{tok_a}")')
    ok('the first token again, INBOX and "" forms: OK')
    for bad in ["tok\tC", "tok\x01C", "tok\x7fC"]:
        status, _, tagged = imap.command(
            literal_plus('SETMETADATA "INBOX" (/private/devicetoken ', bad, ")"))
        expect(status == "NO", f"token {bad!r}: want NO, got {tagged}")
    ok(f"tokens with a control character (TAB, 0x01, DEL) get NO: {tagged.split(' ', 1)[1]}")
    for mailbox in ["INBOX", '""']:
        entries = imap.metadata(f"GETMETADATA {mailbox} (/private/devicetoken)")
        expect(entries.get("/private/devicetoken", "absent") is None,
               f"GETMETADATA {mailbox} (/private/devicetoken) revealed {entries}")
    ok("GETMETADATA of /private/devicetoken answers NIL (INBOX and \"\")")
    listed = [json.loads(l) for l in coid_cli(args, "push", "list", args.user).splitlines()]
    tokens = sorted(t["id"] for t in listed if t.get("kind") == "deltachat")
    want = sorted(token_id(t) for t in args.tokens)
    expect(tokens == want,
           f"coid push list shows Delta Chat tokens {tokens}, want {want}: {listed}")
    ok(f"coid push list {args.user}: exactly the 2 Delta Chat tokens")


def check_coi(imap, args):
    """COI settings written over IMAP land in coid's store (the dict socket is
    really coid's: mailbox-root is virtual, only coid answers it)."""
    imap.ok(f'SETMETADATA "" ({COI}/enabled yes)')
    imap.ok(f'SETMETADATA "" ({COI}/message-filter "active")')
    entries = imap.metadata(
        f'GETMETADATA "" ({COI}/enabled {COI}/message-filter {COI}/mailbox-root)')
    want = {f"{COI}/enabled": "yes", f"{COI}/message-filter": "active",
            f"{COI}/mailbox-root": "COI"}
    expect(entries == want, f"COI settings read back as {entries}, want {want}")
    ok("COI SETMETADATA enabled=yes, message-filter=active; GETMETADATA returns them "
       "and coid's virtual mailbox-root COI")
    shown = coid_cli(args, "user", "get", args.user).split()
    expect("enabled=yes" in shown and "message-filter=active" in shown,
           f"coid user get {args.user} shows {shown}")
    ok("coid user get: the settings are in coid's store")


def check_webpush(imap, args):
    """A Web Push subscription (a JSON literal) goes through Dovecot 2.4 to coid,
    which lists it and sends its validation push to the endpoint."""
    sub_id = "live" + uuid.uuid4().hex[:8]
    subscription = json.dumps({
        "client": "coid live check", "device": "trixie chroot", "msgtype": "chat",
        "resource": {"endpoint": f"{args.stand_in}/webpush/{sub_id}",
                     "keys": {"p256dh": P256DH, "auth": AUTH}},
    })
    imap.ok(literal_plus(f'SETMETADATA "" ({WEBPUSH_SUBSCRIPTIONS}/{sub_id} ', subscription, ")"))
    ok("Web Push subscription SETMETADATA (LITERAL+ JSON): OK")
    entries = imap.metadata(f'GETMETADATA "" ({WEBPUSH_SUBSCRIPTIONS}/{sub_id})')
    listing = json.loads(entries.get(f"{WEBPUSH_SUBSCRIPTIONS}/{sub_id}") or "null")
    expect(isinstance(listing, dict) and listing.get("client") == "coid live check",
           f"GETMETADATA of the subscription: {entries}")
    ok("GETMETADATA lists the subscription")
    deadline = time.monotonic() + 10
    while not posts(args.record, f"/webpush/{sub_id}") and time.monotonic() < deadline:
        time.sleep(0.1)
    expect(posts(args.record, f"/webpush/{sub_id}"),
           "no validation push reached the stand-in in 10 s")
    ok("coid sent the subscription's validation push")


def check_delivery(imap, args):
    """One message through coid's LMTP to Dovecot 2.4's LMTP: coid routes it by the
    COI settings set above (chat message, message-filter active: COI/Chats), the
    2.4 before-script files it and removes coid's headers, and coid notifies
    Delta Chat once per stored token, the POST body being the token."""
    msg_id = f"<live-{uuid.uuid4().hex}@example.org>"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    message = (
        f"From: sender@example.net\r\nTo: {args.user}\r\nSubject: live check\r\n"
        f"Message-ID: {msg_id}\r\nDate: {date}\r\nChat-Version: 1.0\r\n"
        "\r\nhello from the live check\r\n"
    ).encode()
    lmtp = smtplib.LMTP("127.0.0.1", args.coid_lmtp, timeout=30)
    try:
        refused = lmtp.sendmail("sender@example.net", [args.user], message)
    except smtplib.SMTPException as e:
        raise Failed(f"LMTP to coid refused the message: {e}")
    finally:
        lmtp.close()
    expect(not refused, f"LMTP to coid refused: {refused}")
    ok("LMTP to coid: 250")

    # COI on and message-filter active: coid files the chat message into COI/Chats,
    # Dovecot's 2.4 before-script (coid.sieve) stores it there and drops X-Coid-*.
    folder = Path(args.maildir) / ".COI.Chats"
    found = []
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        found = [f for d in ("new", "cur") for f in (folder / d).glob("*")
                 if msg_id.encode() in f.read_bytes()]
        time.sleep(0.1)
    expect(found, f"message {msg_id} is not in {folder}/new or cur")
    stored = found[0].read_bytes()
    expect(b"X-Coid-" not in stored, f"X-Coid- header left in {found[0]}")
    ok(f"the message is in the maildir's COI/Chats ({found[0].parent.name}/), X-Coid-* removed")

    # One notification per stored token, the body the token byte for byte.
    want = sorted(args.tokens) if "devicetoken" in args.steps else []
    deadline = time.monotonic() + 15
    while len(posts(args.record, "/notify")) < len(want) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # anything more than one POST per token would show now
    got = sorted(posts(args.record, "/notify"))
    expect(got == want, f"notify stand-in got bodies {got}, want one POST per token {want}")
    ok(f"the notification stand-in got exactly one POST per token ({len(want)}), body = token")


def check_untoken(imap, args):
    """NIL (a dict unset through Dovecot 2.4) removes the user's tokens."""
    imap.ok('SETMETADATA "INBOX" (/private/devicetoken NIL)')
    listed = [json.loads(l) for l in coid_cli(args, "push", "list", args.user).splitlines()]
    left = [t for t in listed if t.get("kind") == "deltachat"]
    expect(not left, f"after SETMETADATA ... NIL, coid push list still shows {left}")
    ok("SETMETADATA INBOX (/private/devicetoken NIL): OK, no token left")


STEPS = {
    "capability": check_capability,
    "deltachat": check_deltachat_getmetadata,
    "devicetoken": check_devicetokens,
    "coi": check_coi,
    "webpush": check_webpush,
    "delivery": check_delivery,
    "untoken": check_untoken,
}


def check(args):
    imap = Imap(args.imap)
    expect(imap.greeting.startswith("* OK"), f"IMAP greeting: {imap.greeting}")
    imap.ok(f'LOGIN "{args.user}" "{args.password}"')
    ok(f"IMAP LOGIN {args.user} at Dovecot 2.4")
    for step in args.steps:
        STEPS[step](imap, args)
    imap.command("LOGOUT")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stand-in")
    s.add_argument("port_file")
    s.add_argument("record")
    c = sub.add_parser("check")
    c.add_argument("--imap", type=int, required=True, help="Dovecot's IMAP port")
    c.add_argument("--coid-lmtp", type=int, required=True, help="coid's LMTP port")
    c.add_argument("--user", required=True)
    c.add_argument("--password", required=True)
    c.add_argument("--coid", required=True, help="the coid binary")
    c.add_argument("--coid-config", required=True)
    c.add_argument("--coid-log", required=True)
    c.add_argument("--maildir", required=True, help="the user's Maildir, host path")
    c.add_argument("--record", required=True, help="the stand-in's RECORD")
    c.add_argument("--stand-in", required=True, help="the stand-in's base URL")
    c.add_argument("--capability", nargs="+", default=["METADATA", "COI", "WEBPUSH", "XDELTAPUSH"])
    c.add_argument("--tokens", nargs=2, default=[device_token(), device_token()])
    c.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                   help="run only these checks, in this order (for debugging)")
    args = parser.parse_args()
    if args.cmd == "stand-in":
        stand_in(args.port_file, args.record)
        return
    try:
        check(args)
    except (Failed, OSError, subprocess.SubprocessError) as e:
        print(f"check-dovecot24-live: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
