#!/usr/bin/env python3
"""Drive a real Delta Chat client (deltachat-rpc-server) through a mail stack.

Three accounts (alice, bob, carol) are configured against the given IMAP/SMTP
servers with *plain* (no TLS) sockets, then a fixed scenario runs:

  unencrypted-1to1       alice -> bob, before any key exchange (force_encryption=0)
  securejoin             alice scans bob's setup-contact QR (SecureJoin v3, 4 messages)
  encrypted-1to1         alice -> bob, end-to-end encrypted
  mdn                    bob marks it seen -> encrypted read receipt (MDN) to alice
  group-join             alice creates a group with bob; carol joins it via the group QR
                         (SecureJoin vg-*; alice then sends "member added" to the group)
  encrypted-group        alice -> group (bob, carol)
  encrypted-group-reply  bob -> group, quoting alice's message
  unencrypted-group      alice -> an unencrypted group with bob's and carol's address contacts
  reaction               bob reacts to alice's encrypted 1:1 message
  encrypted-file         alice -> bob, encrypted 1:1 with a 150 kB file (pre-message + post-message)

Every step waits until the recipients' clients report the message (IncomingMsg /
MsgRead / SecureJoin progress 1000) and fails after --step-timeout seconds. A global
watchdog (--total-timeout) ends the process, so it never hangs. A JSON summary of
everything sent (client msg ids, Message-IDs, timings, errors) goes to --output.
Exit code: 0 all steps OK, 1 a step failed, 2 bad usage / refused to run, 3 watchdog.

SAFETY: Delta Chat core contains code that may reach the Internet on its own (relays,
autoconfig, DNS, iroh). Run this only in a network namespace that has nothing but
loopback, e.g. `unshare -n sh -c 'ip link set lo up; ...'`, together with the mail stack.
The script refuses to start if it sees any network interface other than `lo`
(override with --allow-network only if you really know what you are doing).

Requires: pip install deltachat-rpc-server deltachat-rpc-client  (tested with 2.65.0)

Example (see README.md):
  python3 dc_scenario.py --imap-host 127.0.0.1 --imap-port 10143 \
      --smtp-host 127.0.0.1 --smtp-port 2525 \
      --account alice@example.org --account bob@example.org --account carol@example.org \
      --password secret --output /tmp/dc-summary.json [--dump-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
from datetime import datetime, timezone

try:
    from deltachat_rpc_client import Account, Chat, DeltaChat, Message, Rpc
    from deltachat_rpc_client.rpc import JsonRpcError
except ImportError:  # pragma: no cover
    print("deltachat-rpc-client is not installed (pip install deltachat-rpc-client "
          "deltachat-rpc-server)", file=sys.stderr)
    sys.exit(2)

ALL_STEPS = [
    "unencrypted-1to1",
    "securejoin",
    "encrypted-1to1",
    "mdn",
    "group-join",
    "encrypted-group",
    "encrypted-group-reply",
    "unencrypted-group",
    "reaction",
    "encrypted-file",
]

OUT_MDN_RCVD = 28
# events kept (until consumed) for wait_event(); the others only go to the event log
WAITABLE = {"IncomingMsg", "SecurejoinJoinerProgress", "SecurejoinInviterProgress",
            "ImapInboxIdle", "MsgRead", "MsgDelivered", "MsgFailed"}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class StepFailed(Exception):
    pass


class Scenario:
    def __init__(self, args):
        self.args = args
        self.summary = {
            "started": now_iso(),
            "ok": False,
            "args": {k: v for k, v in vars(args).items() if k != "password"},
            "versions": {},
            "accounts": {},
            "steps": [],
            "warnings": [],
            "errors": [],
        }
        self.lock = threading.Lock()
        self.written = False
        self.rpc: Rpc | None = None
        self.acc: dict[str, Account] = {}
        self.backlog: dict[int, list] = {}
        self.event_log: dict[int, list] = {}
        self.token = datetime.now().strftime("%H%M%S")
        self.known_dump: set[str] = set()
        self.state: dict = {}

    # ------------------------------------------------------------------ output
    def write_summary(self):
        with self.lock:
            self.summary["finished"] = now_iso()
            self.summary["event_log_tail"] = {
                name: self.event_log.get(a.id, [])[-40:] for name, a in self.acc.items()
            }
            tmp = self.args.output + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.summary, f, indent=1, default=str)
            os.replace(tmp, self.args.output)
            self.written = True

    def watchdog(self):
        self.summary["errors"].append(f"watchdog: total timeout {self.args.total_timeout}s exceeded")
        try:
            self.write_summary()
        finally:
            try:
                if self.rpc is not None:
                    self.rpc.process.kill()
            finally:
                print(f"dc_scenario: WATCHDOG after {self.args.total_timeout}s", file=sys.stderr)
                os._exit(3)

    def log(self, msg):
        if not self.args.quiet:
            print(f"[dc {datetime.now().strftime('%H:%M:%S.%f')[:-3]}] {msg}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ events
    def _pull(self, account: Account, timeout: float):
        """Wait up to `timeout` for one event of `account`, then drain whatever else is
        queued without blocking. Returns the number of events processed."""
        q = self.rpc.get_queue(account.id)
        n = 0
        block = True
        while True:
            try:
                ev = q.get(timeout=timeout) if block else q.get_nowait()
            except queue.Empty:
                return n
            block = False
            n += 1
            self._record(account, dict(ev))

    def _record(self, account: Account, ev: dict):
        kind = ev.get("kind")
        if kind == "Info":
            entry = {"t": now_iso(), "kind": kind, "msg": str(ev.get("msg", ""))[:300]}
        else:
            entry = {"t": now_iso(), **ev}
        log = self.event_log.setdefault(account.id, [])
        log.append(entry)
        if len(log) > 400:
            del log[:100]
        if kind in ("Error", "ErrorSelfNotInGroup", "MsgFailed"):
            self.summary["warnings"].append(f"{self.name_of(account)}: {kind} event: {ev}")
        if kind in WAITABLE:
            bl = self.backlog.setdefault(account.id, [])
            bl.append(ev)
            if len(bl) > 300:
                del bl[:100]

    def wait_event(self, account: Account, pred, what: str, timeout: float | None = None):
        """Wait for an event of `account` satisfying pred (events seen earlier but not yet
        consumed count too). Raises StepFailed after the timeout."""
        timeout = timeout or self.args.step_timeout
        deadline = time.monotonic() + timeout
        while True:
            bl = self.backlog.setdefault(account.id, [])
            for i, ev in enumerate(bl):
                try:
                    ok = pred(ev)
                except JsonRpcError:
                    ok = False
                if ok:
                    del bl[i]
                    return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise StepFailed(f"timeout after {timeout}s waiting for {self.name_of(account)}: {what}")
            self._pull(account, min(left, 0.5))

    def wait_until(self, fn, what: str, timeout: float | None = None, accounts=()):
        timeout = timeout or self.args.step_timeout
        deadline = time.monotonic() + timeout
        while True:
            if fn():
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"timeout after {timeout}s waiting for {what}")
            for a in accounts or self.acc.values():
                self._pull(a, 0.03)

    def wait_incoming_text(self, account: Account, text: str):
        def pred(ev):
            if ev.get("kind") != "IncomingMsg":
                return False
            snap = account.get_message_by_id(ev["msgId"]).get_snapshot()
            return snap.text == text

        ev = self.wait_event(account, pred, f"IncomingMsg with text {text!r}")
        return account.get_message_by_id(ev["msgId"])

    def name_of(self, account: Account) -> str:
        for n, a in self.acc.items():
            if a.id == account.id:
                return n
        return f"account{account.id}"

    # ------------------------------------------------------------------ info
    def msg_record(self, account: Account, msg: Message) -> dict:
        snap = msg.get_snapshot()
        info = ""
        try:
            info = msg.get_info()
        except JsonRpcError as e:
            info = f"(get_message_info failed: {e})"
        mid = None
        m = re.search(r"^Message-ID:\s*(\S+)", info, re.M)
        if m:
            mid = m.group(1).strip("<>")
        chat = snap.chat.get_basic_snapshot()
        return {
            "account": self.name_of(account),
            "msg_id": msg.id,
            "rfc724_mid": mid,
            "chat_id": snap.chat_id,
            "chat_type": chat.get("chat_type"),
            "chat_is_encrypted": chat.get("is_encrypted"),
            "text": snap.text,
            "show_padlock": snap.get("show_padlock"),
            "is_info": snap.get("is_info"),
            "state": snap.get("state"),
            "error": snap.get("error"),
            "timestamp": snap.get("timestamp"),
            "timestamp_sent": snap.get("timestamp_sent"),
            "timestamp_rcvd": snap.get("received_timestamp"),
        }

    def send_and_receive(self, step, sender: Account, msg: Message, text: str, receivers,
                         padlock: bool = False):
        """`sender` sent `msg` with `text`: wait until it went out, then until each of
        `receivers` has it; record both in `step`. With `padlock`, every receiver's copy
        must show the padlock. Returns (message, record) per receiver, in order."""
        self.wait_delivered(sender, msg)
        step["sent"].append(self.msg_record(sender, msg))
        received = []
        for acc in receivers:
            rmsg = self.wait_incoming_text(acc, text)
            rec = self.msg_record(acc, rmsg)
            step["received"].append(rec)
            if padlock and not rec["show_padlock"]:
                raise StepFailed(f"{step['name']} to {self.name_of(acc)} arrived without padlock")
            received.append((rmsg, rec))
        return received

    def wait_delivered(self, account: Account, msg: Message):
        """Wait until the sender's SMTP send went through (state >= delivered) or failed."""
        def fn():
            s = msg.get_snapshot()
            if s.state == 24:  # OutFailed
                raise StepFailed(f"message {msg.id} failed to send: {s.get('error')}")
            return s.state >= 26
        self.wait_until(fn, f"msg {msg.id} of {self.name_of(account)} to be sent", accounts=[account])

    # ------------------------------------------------------------------ dump dir
    def dump_snapshot(self) -> set[str]:
        d = self.args.dump_dir
        if not d or not os.path.isdir(d):
            return set()
        return {f for f in os.listdir(d) if f.endswith(".eml")}

    def collect_dump(self, step: dict):
        """Attribute new dump files to the step: wait until no new file appeared for
        --dump-quiet seconds (max 4x that)."""
        if not self.args.dump_dir:
            return
        quiet = self.args.dump_quiet
        start = time.monotonic()
        seen = self.dump_snapshot()
        last_change = time.monotonic()
        while time.monotonic() - last_change < quiet and time.monotonic() - start < 4 * quiet:
            for a in self.acc.values():
                self._pull(a, 0.03)
            cur = self.dump_snapshot()
            if cur != seen:
                seen, last_change = cur, time.monotonic()
        new = sorted(seen - self.known_dump)
        self.known_dump |= seen
        files = []
        for f in new:
            rec = {"eml": f}
            j = os.path.join(self.args.dump_dir, f[:-4] + ".json")
            try:
                with open(j) as fh:
                    rec.update(json.load(fh))
            except (OSError, ValueError):
                pass
            try:
                with open(os.path.join(self.args.dump_dir, f), "rb") as fh:
                    head = fh.read(65536).split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
                m = re.search(r"^Message-ID:\s*(\S+)", head, re.M | re.I)
                rec["message_id"] = m.group(1).strip("<>") if m else None
            except OSError:
                pass
            files.append(rec)
        step["dump_files"] = files

    # ------------------------------------------------------------------ setup
    def setup(self):
        a = self.args
        tmp = None
        accounts_dir = a.accounts_dir
        if not accounts_dir:
            tmp = tempfile.mkdtemp(prefix="dc-scenario-")
            accounts_dir = os.path.join(tmp, "accounts")
        self.tmp = tmp
        self.rpc = Rpc(accounts_dir=accounts_dir, rpc_server_path=a.rpc_server)
        self.rpc.start()
        dc = DeltaChat(self.rpc)
        sysinfo = dc.get_system_info()
        self.summary["versions"] = {
            "deltachat_core_version": sysinfo.get("deltachat_core_version"),
            "rpc_server_path": shutil.which(a.rpc_server) or a.rpc_server,
            "system_info": dict(sysinfo),
        }
        self.log(f"core {sysinfo.get('deltachat_core_version')}")
        names = ["alice", "bob", "carol"]
        for name, spec in zip(names, a.account):
            addr, _, pw = spec.partition(":")
            pw = pw or a.password
            acc = dc.add_account()
            self.acc[name] = acc
            t0 = time.monotonic()
            acc.set_config("displayname", name.capitalize())
            params = {
                "addr": addr,
                "password": pw,
                "imapServer": a.imap_host,
                "imapPort": a.imap_port,
                "imapSecurity": "plain",
                "smtpServer": a.smtp_host,
                "smtpPort": a.smtp_port,
                "smtpSecurity": "plain",
            }
            self.configure(acc, params, name)
            # read receipts on; allow unencrypted sends (core 2.x default force_encryption=1)
            acc.set_config("mdns_enabled", "1")
            acc.set_config("force_encryption", "0" if a.allow_unencrypted else "1")
            if a.bcc_self is not None:
                acc.set_config("bcc_self", a.bcc_self)
            cfg = {}
            for key in ("mdns_enabled", "force_encryption", "bcc_self", "mvbox_move",
                        "only_fetch_mvbox", "delete_server_after", "is_chatmail",
                        "configured_addr", "configured_mail_server", "configured_mail_port"):
                try:
                    cfg[key] = acc.get_config(key)
                except JsonRpcError as e:
                    cfg[key] = f"(error: {e})"
            self.summary["accounts"][name] = {
                "addr": addr, "account_id": acc.id, "config": cfg,
                "configure_s": round(time.monotonic() - t0, 3),
            }
            self.log(f"{name} <{addr}> configured: {cfg}")
        for name, acc in self.acc.items():
            acc.start_io()
        for name, acc in self.acc.items():
            self.wait_event(acc, lambda ev: ev.get("kind") == "ImapInboxIdle", "ImapInboxIdle")
            self.log(f"{name} IDLE")

    def configure(self, acc: Account, params: dict, name: str):
        fut = self.rpc.add_or_update_transport.future(acc.id, params)
        result = {}

        def run():
            try:
                result["v"] = fut()
            except Exception as e:  # noqa: BLE001
                result["e"] = e

        th = threading.Thread(target=run, daemon=True)
        th.start()
        th.join(self.args.step_timeout)
        if th.is_alive():
            raise StepFailed(f"configure {name}: timeout after {self.args.step_timeout}s")
        if "e" in result:
            raise StepFailed(f"configure {name}: {result['e']}")

    # ------------------------------------------------------------------ steps
    def text(self, label):
        return f"{label} [{self.token}]"

    def step_unencrypted_1to1(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        bob_addr = self.summary["accounts"]["bob"]["addr"]
        contact = alice.create_contact(bob_addr, "Bob")  # address-contact: no key known
        chat = contact.create_chat()
        text = self.text("hello bob, unencrypted")
        [(_, rec)] = self.send_and_receive(step, alice, chat.send_text(text), text, [bob])
        if rec["show_padlock"]:
            self.summary["warnings"].append("unencrypted-1to1 arrived with a padlock")

    def step_securejoin(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        qr = bob.get_qr_code()
        step["qr"] = qr  # test-only secret; lets one decrypt the symmetric handshake steps
        chat = alice.secure_join(qr)
        self.wait_event(alice, lambda ev: ev.get("kind") == "SecurejoinJoinerProgress"
                        and ev.get("progress") == 1000, "SecurejoinJoinerProgress 1000")
        self.wait_event(bob, lambda ev: ev.get("kind") == "SecurejoinInviterProgress"
                        and ev.get("progress") == 1000, "SecurejoinInviterProgress 1000")
        self.state["ab_chat"] = chat
        snap = chat.get_basic_snapshot()
        step["chat"] = {"chat_id": chat.id, "is_encrypted": snap.get("is_encrypted"),
                        "chat_type": snap.get("chat_type")}
        if not snap.get("is_encrypted"):
            raise StepFailed("alice's chat with bob is not encrypted after SecureJoin")

    def step_encrypted_1to1(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        chat = self.state["ab_chat"]
        text = self.text("hello bob, encrypted")
        msg = chat.send_text(text)
        [(rmsg, _)] = self.send_and_receive(step, alice, msg, text, [bob], padlock=True)
        self.state["e1_sent"], self.state["e1_rcvd"] = msg, rmsg

    def step_mdn(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        rmsg, smsg = self.state["e1_rcvd"], self.state["e1_sent"]
        bob.mark_seen_messages([rmsg])
        self.wait_until(lambda: smsg.get_snapshot().state == OUT_MDN_RCVD,
                        "alice: encrypted message state OutMdnRcvd (MDN from bob)",
                        timeout=self.args.mdn_timeout)
        step["received"].append(self.msg_record(alice, smsg))
        try:
            step["read_receipts"] = [dict(r) for r in smsg.get_read_receipts()]
        except JsonRpcError:
            pass

    def _key_contact(self, account: Account, chat: Chat):
        contacts = [c for c in chat.get_contacts() if c.id > 9]  # skip SELF/DEVICE specials
        if len(contacts) != 1:
            raise StepFailed(f"expected one contact in chat {chat.id}, got {len(contacts)}")
        return contacts[0]

    def step_group_join(self, step):
        alice, carol = self.acc["alice"], self.acc["carol"]
        group = alice.create_group(f"Test group {self.token}")
        group.add_contact(self._key_contact(alice, self.state["ab_chat"]))  # bob, key-contact
        qr = group.get_qr_code()
        step["qr"] = qr
        t0 = time.monotonic()
        carol_group = carol.secure_join(qr)
        self.wait_event(carol, lambda ev: ev.get("kind") == "SecurejoinJoinerProgress"
                        and ev.get("progress") == 1000, "SecurejoinJoinerProgress 1000 (group)")
        self.wait_event(alice, lambda ev: ev.get("kind") == "SecurejoinInviterProgress"
                        and ev.get("progress") == 1000, "SecurejoinInviterProgress 1000 (group)")
        # bob must learn about the group ("member added" message from alice)
        def bob_has_group():
            for c in self.acc["bob"].get_chatlist():
                s = c.get_basic_snapshot()
                if s.get("chat_type") == "Group" and s.get("name") == f"Test group {self.token}":
                    self.state["bob_group"] = c
                    return True
            return False
        self.wait_until(bob_has_group, "bob: group chat to appear")
        step["elapsed_join_s"] = round(time.monotonic() - t0, 3)
        self.state["group"], self.state["carol_group"] = group, carol_group
        snap = group.get_basic_snapshot()
        step["chat"] = {"chat_id": group.id, "is_encrypted": snap.get("is_encrypted"),
                        "members": len(group.get_contacts())}

    def step_encrypted_group(self, step):
        alice, bob, carol = self.acc["alice"], self.acc["bob"], self.acc["carol"]
        text = self.text("hello group, encrypted")
        msg = self.state["group"].send_text(text)
        received = self.send_and_receive(step, alice, msg, text, [bob, carol], padlock=True)
        self.state["g_rcvd_bob"] = received[0][0]

    def step_encrypted_group_reply(self, step):
        alice, bob, carol = self.acc["alice"], self.acc["bob"], self.acc["carol"]
        quoted = self.state["g_rcvd_bob"]
        chat = quoted.get_snapshot().chat
        text = self.text("reply from bob to the group")
        msg = chat.send_message(text=text, quoted_msg=quoted)
        self.send_and_receive(step, bob, msg, text, [alice, carol])

    def step_unencrypted_group(self, step):
        alice, bob, carol = self.acc["alice"], self.acc["bob"], self.acc["carol"]
        name = f"Plain group {self.token}"
        chat_id = self.rpc.create_group_chat_unencrypted(alice.id, name)
        group = Chat(alice, chat_id)
        for who in ("bob", "carol"):
            addr = self.summary["accounts"][who]["addr"]
            group.add_contact(alice.create_contact(addr, who.capitalize()))  # address-contacts
        text = self.text("hello group, unencrypted")
        self.send_and_receive(step, alice, group.send_text(text), text, [bob, carol])

    def step_reaction(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        rmsg, smsg = self.state["e1_rcvd"], self.state["e1_sent"]
        r = rmsg.send_reaction("\N{THUMBS UP SIGN}")
        self.wait_delivered(bob, r)
        step["sent"].append(self.msg_record(bob, r))

        def has_reaction():
            rs = smsg.get_reactions()
            return bool(rs and rs.get("reactions"))
        self.wait_until(has_reaction, "alice: reaction on her encrypted message")

    def step_encrypted_file(self, step):
        alice, bob = self.acc["alice"], self.acc["bob"]
        d = tempfile.mkdtemp(prefix="dc-file-")
        path = os.path.join(d, "random.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(self.args.file_size))
        text = self.text("a file for bob")
        msg = self.state["ab_chat"].send_message(text=text, file=path)
        self.wait_delivered(alice, msg)
        step["sent"].append(self.msg_record(alice, msg))

        bob_chat = self.state["e1_rcvd"].get_snapshot().chat
        found = {}

        def arrived():
            for m in reversed(bob_chat.get_messages()):
                snap = m.get_snapshot()
                if snap.text == text:
                    found["states"] = found.get("states", []) + [snap.get("download_state")]
                    if snap.get("download_state") == "Done" and snap.get("file"):
                        found["msg"] = m
                        return True
                    return False
            return False
        self.wait_until(arrived, f"bob: fully downloaded message with file, text {text!r}")
        rec = self.msg_record(bob, found["msg"])
        rec["download_states_seen"] = sorted(set(map(str, found.get("states", []))))
        step["received"].append(rec)
        shutil.rmtree(d, ignore_errors=True)

    # ------------------------------------------------------------------ main
    def run(self) -> int:
        timer = threading.Timer(self.args.total_timeout, self.watchdog)
        timer.daemon = True
        timer.start()
        rc = 0
        try:
            t0 = time.monotonic()
            self.setup()
            self.summary["setup_s"] = round(time.monotonic() - t0, 3)
            self.known_dump = self.dump_snapshot()
            self.summary["dump_files_before"] = sorted(self.known_dump)
            steps = [s for s in ALL_STEPS if s not in self.args.skip]
            if not self.args.allow_unencrypted:
                steps = [s for s in steps if not s.startswith("unencrypted")]
            for name in steps:
                step = {"name": name, "started": now_iso(), "ok": False, "sent": [], "received": []}
                self.summary["steps"].append(step)
                self.log(f"step {name} ...")
                t = time.monotonic()
                try:
                    getattr(self, "step_" + name.replace("-", "_"))(step)
                    step["ok"] = True
                except (StepFailed, JsonRpcError, KeyError) as e:
                    step["error"] = f"{type(e).__name__}: {e}"
                    self.summary["errors"].append(f"{name}: {step['error']}")
                    self.log(f"step {name} FAILED: {step['error']}")
                step["elapsed_s"] = round(time.monotonic() - t, 3)
                self.collect_dump(step)
                self.log(f"step {name} {'ok' if step['ok'] else 'FAILED'} in {step['elapsed_s']}s"
                         + (f", {len(step.get('dump_files', []))} dumped message(s)" if self.args.dump_dir else ""))
                self.write_summary()
                if not step["ok"]:
                    rc = 1
                    if not self.args.keep_going:
                        break
            self.summary["total_s"] = round(time.monotonic() - t0, 3)
            if self.args.export_keys:
                for name, acc in self.acc.items():
                    d = os.path.join(self.args.export_keys, name)
                    os.makedirs(d, exist_ok=True)
                    acc.export_self_keys(d)
        except Exception as e:  # noqa: BLE001
            self.summary["errors"].append(f"{type(e).__name__}: {e}")
            self.summary["traceback"] = traceback.format_exc()
            self.log(f"FAILED: {e}")
            rc = 1
        finally:
            self.summary["ok"] = rc == 0 and not self.summary["errors"]
            if rc == 0 and self.summary["errors"]:
                rc = 1
            self.write_summary()
            if self.rpc is not None:
                closer = threading.Thread(target=self.rpc.close, daemon=True)
                closer.start()
                closer.join(15)
                if closer.is_alive():
                    self.rpc.process.kill()
            if self.tmp and not self.args.keep_accounts:
                shutil.rmtree(self.tmp, ignore_errors=True)
            timer.cancel()
        return rc


def non_loopback_interfaces() -> list[str]:
    # /proc/net/dev is per network namespace (/sys/class/net is not, unless sysfs is remounted)
    try:
        with open("/proc/net/dev") as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return ["(cannot read /proc/net/dev)"]
    return [n for n in (l.split(":", 1)[0].strip() for l in lines) if n and n != "lo"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--imap-host", default="127.0.0.1")
    ap.add_argument("--imap-port", type=int, required=True)
    ap.add_argument("--smtp-host", default="127.0.0.1")
    ap.add_argument("--smtp-port", type=int, required=True)
    ap.add_argument("--account", action="append", required=True,
                    help="ADDR or ADDR:PASSWORD; give exactly 3 (alice, bob, carol in this order)")
    ap.add_argument("--password", default=None, help="password for accounts given without one")
    ap.add_argument("--output", required=True, help="JSON summary path")
    ap.add_argument("--dump-dir", help="LMTP dump dir (NNNNNN.eml/.json) to attribute messages to steps")
    ap.add_argument("--dump-quiet", type=float, default=1.5,
                    help="seconds without new dump files before a step's capture is closed")
    ap.add_argument("--accounts-dir", help="Delta Chat accounts dir (default: fresh temp dir)")
    ap.add_argument("--export-keys", metavar="DIR",
                    help="after the scenario, export each account's OpenPGP keys (incl. SECRET keys) "
                         "to DIR/<name>/ so that captured messages can be decrypted for analysis")
    ap.add_argument("--keep-accounts", action="store_true", help="do not delete the temp accounts dir")
    ap.add_argument("--rpc-server", default="deltachat-rpc-server", help="path of deltachat-rpc-server")
    ap.add_argument("--step-timeout", type=float, default=30.0)
    ap.add_argument("--mdn-timeout", type=float, default=60.0)
    ap.add_argument("--total-timeout", type=float, default=300.0)
    ap.add_argument("--file-size", type=int, default=150_000, help="attachment size (> 140000 = PRE_MSG_ATTACHMENT_SIZE_THRESHOLD, gives a pre- + post-message) for encrypted-file")
    ap.add_argument("--skip", action="append", default=[], choices=ALL_STEPS)
    ap.add_argument("--no-unencrypted", dest="allow_unencrypted", action="store_false",
                    help="keep force_encryption=1 and skip the unencrypted steps")
    ap.add_argument("--bcc-self", choices=["0", "1"], default=None,
                    help="set bcc_self explicitly (default: leave the core default)")
    ap.add_argument("--keep-going", action="store_true", help="run later steps after a failure")
    ap.add_argument("--allow-network", action="store_true",
                    help="run even if interfaces other than lo exist (NOT recommended)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if len(args.account) != 3:
        ap.error("give exactly three --account (alice, bob, carol)")
    for spec in args.account:
        if ":" not in spec and not args.password:
            ap.error(f"no password for {spec} (use ADDR:PASSWORD or --password)")
    ifs = non_loopback_interfaces()
    if ifs and not args.allow_network:
        print(f"dc_scenario: refusing to run: network interfaces other than lo exist: {ifs}.\n"
              "Run inside a loopback-only namespace: unshare -n sh -c 'ip link set lo up; ...'",
              file=sys.stderr)
        return 2
    if shutil.which(args.rpc_server) is None:
        print(f"dc_scenario: {args.rpc_server} not found (pip install deltachat-rpc-server)", file=sys.stderr)
        return 2
    if args.dump_dir:
        args.dump_dir = os.path.abspath(args.dump_dir)
    sc = Scenario(args)
    rc = sc.run()
    print(f"dc_scenario: {'OK' if rc == 0 else 'FAILED'} -> {args.output}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
