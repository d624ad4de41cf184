#!/usr/bin/env python3
"""The client side of packaging/check-booted.sh, run inside the booted container
(python3 stdlib only). It reuses check-dovecot24-live.py's IMAP client, checks and
push stand-in, which check-booted.sh copies next to it.

  imap-checks OPTIONS   As a COI and Delta Chat client over IMAP (127.0.0.1:143, so
                        through Dovecot and its dict client to coid's dict socket):
                        capabilities, Delta Chat's server entries, COI settings, two
                        Delta Chat device tokens, a Web Push subscription whose
                        validation push reaches the stand-in. Writes the tokens to
                        --tokens-out.
  getmeta OPTIONS       Prints the user's COI settings read over IMAP as JSON.
  lmtp-across OPTIONS -- CMD...
                        An LMTP transaction to coid's socket that stays open across
                        CMD (reload, stop), run after RCPT TO (--at rcpt) or in the
                        middle of the message (--at data: after DATA's 354 and the
                        header). Exits 1 unless the message then gets 250.
  lmtp-rcpt OPTIONS     LHLO, MAIL, RCPT to an LMTP socket; exits 1 unless the RCPT
                        reply has the --expect code. Nothing is delivered.
  connect-during --socket PATH -- CMD...
                        Connects to PATH about every millisecond while CMD (an
                        upgrade) runs; exits 1 if any connect failed.
"""

import argparse
import importlib.util
import json
import socket
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("live", HERE / "check-dovecot24-live.py")
live = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live)
Failed, ok, expect = live.Failed, live.ok, live.expect
COI = live.COI


def imap_login(user, password):
    imap = live.Imap(143)
    expect(imap.greeting.startswith("* OK"), f"IMAP greeting: {imap.greeting}")
    imap.ok(f'LOGIN "{user}" "{password}"')
    return imap


def imap_checks(args):
    imap = imap_login(args.user, args.password)
    ok(f"IMAP LOGIN {args.user} at Dovecot, 127.0.0.1:143")
    tokens = [live.device_token(), live.device_token()]
    ns = types.SimpleNamespace(
        capability=["METADATA", "COI", "WEBPUSH", "XDELTAPUSH"], user=args.user,
        coid="/usr/bin/coid", coid_config="/etc/coid/coid.toml", tokens=tokens,
        record=args.record, stand_in=args.stand_in)
    live.check_capability(imap, ns)
    # Delta Chat's server entries (check-dovecot24-live.py also reads coid's debug
    # log to see that coid answered; here maxsmtprecipients, which only coid knows,
    # shows it).
    entries = imap.metadata(live.DELTACHAT_GETMETADATA)
    got = entries.get("/shared/vendor/deltachat/maxsmtprecipients")
    expect(got == "1000", f"Delta Chat's GETMETADATA: maxsmtprecipients {got!r}: {entries}")
    ok("Delta Chat's server-entry GETMETADATA: OK, maxsmtprecipients 1000 (coid's answer)")
    live.check_coi(imap, ns)
    live.check_devicetokens(imap, ns)
    Path(args.tokens_out).write_text("\n".join(tokens) + "\n")
    live.check_webpush(imap, ns)
    imap.command("LOGOUT")


def getmeta(args):
    imap = imap_login(args.user, args.password)
    entries = imap.metadata(
        f'GETMETADATA "" ({COI}/enabled {COI}/message-filter {COI}/mailbox-root)')
    imap.command("LOGOUT")
    print(json.dumps(entries, sort_keys=True))


class Lmtp:
    """A minimal LMTP client on a unix socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.reply()  # greeting

    def reply(self):
        """One (possibly multi-line) reply: (code, text)."""
        lines = []
        while True:
            raw = self.file.readline()
            expect(raw.endswith(b"\r\n"), f"LMTP connection closed after {lines} {raw!r}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    def command(self, line, want=None):
        self.sock.sendall(line.encode() + b"\r\n")
        code, text = self.reply()
        if want is not None:
            expect(code // 100 == want // 100, f"LMTP {line!r}: {text}")
        return code, text


def message(sender, rcpt, subject):
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    return (f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n"
            f"Message-ID: <booted-{uuid.uuid4().hex}@example.org>\r\nDate: {date}\r\n"
            "\r\nhello from check-booted\r\n.\r\n")


def lmtp_across(args):
    lmtp = Lmtp(args.socket)
    lmtp.command("LHLO check-booted", 250)
    lmtp.command(f"MAIL FROM:<{args.sender}>", 250)
    lmtp.command(f"RCPT TO:<{args.rcpt}>", 250)
    head, body = message(args.sender, args.rcpt, args.subject).split("\r\n\r\n", 1)
    if args.at == "rcpt":
        ok(f"LMTP to {args.socket}: LHLO, MAIL, RCPT {args.rcpt}: 250")
        run_between(args.cmd)
        lmtp.command("DATA", 354)
        lmtp.sock.sendall(f"{head}\r\n\r\n{body}".encode())
    else:
        lmtp.command("DATA", 354)
        lmtp.sock.sendall(f"{head}\r\n\r\n".encode())
        ok(f"LMTP to {args.socket}: LHLO, MAIL, RCPT {args.rcpt}, DATA 354, the header")
        run_between(args.cmd)
        lmtp.sock.sendall(body.encode())
    code, text = lmtp.reply()  # one reply per recipient (RFC 2033)
    expect(code == 250, f"after {' '.join(args.cmd)}, the message got {text}")
    ok(f"the same session, the rest of the message: {text}")
    try:
        lmtp.command("QUIT")
    except (Failed, OSError):
        pass  # a stopping coid closes the session after the message (421)


def run_between(cmd):
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    expect(run.returncode == 0, f"{' '.join(cmd)}: exit {run.returncode}: {run.stderr}")
    ok(f"ran: {' '.join(cmd)}")


def connect_during(args):
    """Connects to a unix socket again and again (about every millisecond) while cmd
    runs: every connect must succeed (a socket closed and opened again, even for a few
    milliseconds, fails some of them)."""
    import threading
    done = threading.Event()
    tries, failures = [0], []

    def hammer():
        while not done.is_set():
            tries[0] += 1
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(args.socket)
            except OSError as e:
                failures.append(f"{time.monotonic():.3f}: {e}")
            time.sleep(0.001)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        run_between(args.cmd)
    finally:
        done.set()
        thread.join()
    expect(not failures, f"{len(failures)} of {tries[0]} connects to {args.socket} failed "
           f"during {' '.join(args.cmd)}: {failures[:5]}")
    ok(f"{tries[0]} connects to {args.socket} while it ran, none failed")


def lmtp_rcpt(args):
    lmtp = Lmtp(args.socket)
    lmtp.command("LHLO check-booted", 250)
    lmtp.command(f"MAIL FROM:<{args.sender}>", 250)
    code, text = lmtp.command(f"RCPT TO:<{args.rcpt}>")
    expect(code == args.expect, f"RCPT TO:<{args.rcpt}> at {args.socket}: {text}, want {args.expect}")
    ok(f"RCPT TO:<{args.rcpt}> at {args.socket}: {text}")
    lmtp.command("QUIT")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd_name", required=True)
    c = sub.add_parser("imap-checks")
    c.add_argument("--user", required=True)
    c.add_argument("--password", required=True)
    c.add_argument("--stand-in", required=True, help="the push stand-in's base URL")
    c.add_argument("--record", required=True, help="the stand-in's RECORD file")
    c.add_argument("--tokens-out", required=True)
    g = sub.add_parser("getmeta")
    g.add_argument("--user", required=True)
    g.add_argument("--password", required=True)
    for name in ("lmtp-across", "lmtp-rcpt"):
        p = sub.add_parser(name)
        p.add_argument("--socket", required=True)
        p.add_argument("--sender", default="sender@example.org")
        p.add_argument("--rcpt", required=True)
        if name == "lmtp-across":
            p.add_argument("--subject", required=True)
            p.add_argument("--at", choices=["rcpt", "data"], default="rcpt")
            p.add_argument("cmd", nargs="+")
        else:
            p.add_argument("--expect", type=int, required=True)
    d = sub.add_parser("connect-during")
    d.add_argument("--socket", required=True)
    d.add_argument("cmd", nargs="+")
    args = parser.parse_args()
    try:
        {"imap-checks": imap_checks, "getmeta": getmeta,
         "lmtp-across": lmtp_across, "lmtp-rcpt": lmtp_rcpt,
         "connect-during": connect_during}[args.cmd_name](args)
    except (Failed, OSError, subprocess.SubprocessError) as e:
        print(f"check-booted.py: FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
