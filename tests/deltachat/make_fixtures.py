#!/usr/bin/env python3
"""Turn a capture (dc_scenario.py summary + LMTP dump) into fixtures + INDEX.md.

  make_fixtures.py --summary /tmp/dc-capture/summary.json \
      --dump-dir /tmp/dc-capture/run/lmtp-dump [--keys /tmp/dc-capture/keys] \
      --out tests/data/eml/deltachat

Each dumped message is copied byte for byte (CRLF kept, nothing stripped) to
OUT/<kind>.eml, where the kind comes from the scenario step that produced it.
With --keys (needs `pip install pysequoia`, which handles the RFC 9580 packets
Delta Chat 2.x sends and that GnuPG 2.2 cannot read) every encrypted message is
decrypted in memory to name the SecureJoin steps and to list the inner
(protected) headers in INDEX.md; no plaintext is written as a fixture.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys
import urllib.parse

STEP_KIND = {
    "unencrypted-1to1": "unencrypted-1to1",
    "encrypted-1to1": "encrypted-1to1",
    "mdn": "mdn",
    "encrypted-group": "encrypted-group",
    "encrypted-group-reply": "encrypted-group-reply",
    "unencrypted-group": "unencrypted-group",
    "reaction": "reaction",
}
INNER_KEYS = ("Content-Type", "Chat-Version", "Secure-Join", "Chat-Group-ID", "Chat-Group-Name",
              "Chat-Group-Member-Added", "Chat-Disposition-Notification-To", "In-Reply-To",
              "References", "Subject", "To", "Auto-Submitted", "Content-Disposition",
              "Chat-Is-Post-Message", "Chat-Post-Message-ID", "Chat-Post-Message-Metadata",
              "Autocrypt", "Autocrypt-Gossip", "Secure-Join-Group", "Chat-Content")
INNER_KEYS_LC = {k.lower() for k in INNER_KEYS}


def split_headers(raw: bytes) -> list[tuple[str, str]]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    out: list[tuple[str, str]] = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + "\r\n" + line)
        elif ":" in line:
            k, v = line.split(":", 1)
            out.append((k, v[1:] if v.startswith(" ") else v))
    return out


def show(name: str, value: str) -> str:
    v = re.sub(r"\r\n[ \t]+", " ", value)  # unfold for display
    if name.lower() in ("autocrypt", "autocrypt-gossip") and "keydata=" in v:
        pre, key = v.split("keydata=", 1)
        v = f"{pre}keydata=<{len(key.replace(' ', ''))} base64 chars>"
    return v


class Decryptor:
    def __init__(self, keys_dir: str, summary: dict):
        import pysequoia  # noqa: F401  (optional dependency)
        self.ps = pysequoia
        self.tsk = {}
        for d in glob.glob(os.path.join(keys_dir, "*")):
            for f in glob.glob(os.path.join(d, "private-key-*.asc")):
                self.tsk[os.path.basename(d)] = pysequoia.Cert.from_file(f)
        self.addr = {v["addr"]: k for k, v in summary["accounts"].items()}
        self.passwords = []
        for st in summary["steps"]:
            qr = st.get("qr")
            if qr and "#" in qr:
                fp, _, rest = qr.split("#", 1)[1].partition("&")
                q = urllib.parse.parse_qs(rest)
                for auth in q.get("s", []):
                    self.passwords.append(f"securejoin/{fp}/{auth}")

    def decrypt(self, raw: bytes, rcpts: list[str]) -> tuple[bytes | None, str]:
        m = re.search(rb"-----BEGIN PGP MESSAGE-----.*?-----END PGP MESSAGE-----", raw, re.S)
        if not m:
            return None, "not encrypted"
        arm = m.group(0)
        for r in rcpts:
            name = self.addr.get(r)
            if name in self.tsk:
                try:
                    return self.ps.decrypt(arm, decryptor=self.tsk[name].secrets.decryptor()).bytes, \
                        f"public-key (PKESK) to {name}"
                except Exception:  # noqa: BLE001
                    pass
        for pw in self.passwords:
            try:
                return self.ps.decrypt(arm, passwords=[pw]).bytes, \
                    "symmetric (SKESK), password securejoin/<inviter-fp>/<auth from QR>"
            except Exception:  # noqa: BLE001
                pass
        return None, "could not decrypt"


def envelope_addr(line: str) -> str:
    m = re.search(r"<([^>]*)>", line or "")
    return m.group(1) if m else (line or "")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary", required=True)
    ap.add_argument("--dump-dir", required=True)
    ap.add_argument("--keys")
    ap.add_argument("--out", required=True)
    ap.add_argument("--only-kind", help="regex: only write fixtures whose kind matches")
    ap.add_argument("--first-only", action="store_true", help="write only the first message of each kind")
    ap.add_argument("--append-index", metavar="TITLE",
                    help="append to an existing INDEX.md under this heading instead of rewriting it")
    a = ap.parse_args()
    summary = json.load(open(a.summary))
    dec = None
    if a.keys:
        try:
            dec = Decryptor(a.keys, summary)
        except ImportError:
            print("pysequoia not installed: no decryption", file=sys.stderr)
    os.makedirs(a.out, exist_ok=True)
    entries = []
    for st in summary["steps"]:
        if not st.get("ok"):
            print(f"warning: step {st['name']} failed; its messages are skipped", file=sys.stderr)
            continue
        files = st.get("dump_files", [])
        for n, d in enumerate(files, 1):
            raw = open(os.path.join(a.dump_dir, d["eml"]), "rb").read()
            rcpts = [envelope_addr(r) for r in d.get("rcpts", [])]
            inner, how = (None, "not decrypted")
            if dec:
                inner, how = dec.decrypt(raw, rcpts)
            ih = split_headers(inner) if inner else []
            ihd = {k.lower(): v for k, v in ih}
            sj = ihd.get("secure-join", "").strip()
            if "multi-device-sync" in ihd.get("content-type", ""):
                kind = "multi-device-sync"
            elif st["name"] == "securejoin":
                kind = f"securejoin-step{n}" + (f"-{sj}" if sj else "")
            elif st["name"] == "group-join":
                kind = f"securejoin-group-step{n}" + (f"-{sj}" if sj else "")
            elif st["name"] == "encrypted-file":
                outer = {k.lower(): v for k, v in split_headers(raw)}
                kind = ("encrypted-file-post-message" if "chat-is-post-message" in outer
                        else "encrypted-file-pre-message")
            else:
                kind = STEP_KIND.get(st["name"], st["name"]) + (f"-{n}" if len(files) > 1 else "")
            if a.only_kind and not re.search(a.only_kind, kind):
                continue
            if any(e["kind"] == kind for e in entries):
                if a.first_only:
                    continue
                i = 2
                while any(e["kind"] == f"{kind}-{i}" for e in entries):
                    i += 1
                kind = f"{kind}-{i}"
            dst = os.path.join(a.out, kind + ".eml")
            shutil.copyfile(os.path.join(a.dump_dir, d["eml"]), dst)
            entries.append({
                "kind": kind, "file": kind + ".eml", "step": st["name"], "size": len(raw),
                "mail_from": d.get("mail_from"), "rcpts": d.get("rcpts", []),
                "outer": split_headers(raw), "inner": ih, "how": how,
                "sent": [s for s in st.get("sent", []) if s.get("rfc724_mid") == d.get("message_id")],
            })
            print(f"{d['eml']} -> {dst}", file=sys.stderr)
    v = summary.get("versions", {})
    if a.append_index:
        lines = ["", f"# {a.append_index}", "",
                 f"deltachat-rpc-server {v.get('deltachat_core_version')}, captured {summary.get('started')}, "
                 f"driver args: `{' '.join(k + '=' + str(x) for k, x in sorted(summary.get('args', {}).items()) if k in ('bcc_self', 'skip'))}`.",
                 "", "| file | size | MAIL FROM | RCPT TO | encryption |", "|---|---|---|---|---|"]
    else:
        lines = [
            "# Delta Chat fixtures (captured LMTP deliveries)",
            "",
            f"Produced by `tests/deltachat/dc_scenario.py` with deltachat-rpc-server "
            f"**{v.get('deltachat_core_version')}** through Postfix 3.7 -> LMTP dump hop -> Dovecot 2.3 "
            f"(see `tests/deltachat/README.md`). Captured {summary.get('started')}.",
            "Each `.eml` is the DATA exactly as Postfix sent it over LMTP (dot-unstuffed, CRLF, "
            "Postfix's `Received:` included, nothing removed). Accounts: alice, bob, carol @example.org.",
            "",
            "Outer headers are listed in file order with folded lines unfolded; Autocrypt key data is "
            "abbreviated here (it is complete in the files). \"Inner\" headers were obtained by decrypting "
            "with the test accounts' exported keys (not part of the fixtures) and are listed for reference only: "
            "a proxy cannot see them.",
            "",
            "| file | size | MAIL FROM | RCPT TO | encryption |",
            "|---|---|---|---|---|",
        ]
    for e in entries:
        enc = "none" if e["how"] == "not encrypted" else e["how"].split(" (")[0]
        lines.append(f"| `{e['file']}` | {e['size']} | {envelope_addr(e['mail_from'])} | "
                     f"{', '.join(envelope_addr(r) for r in e['rcpts'])} | {enc} |")
    for e in entries:
        lines += ["", f"## `{e['file']}`", "",
                  f"* scenario step: `{e['step']}`" + (f"; client msg id {e['sent'][0]['msg_id']} of "
                                                       f"{e['sent'][0]['account']}" if e["sent"] else ""),
                  f"* envelope: `{e['mail_from']}`; " + "; ".join(f"`{r}`" for r in e["rcpts"]),
                  f"* encryption: {e['how']}", "", "Outer headers:", "", "```"]
        lines += [f"{k}: {show(k, v)}" for k, v in e["outer"]]
        lines += ["```"]
        if e["inner"]:
            lines += ["", "Inner (encrypted) headers, selection:", "", "```"]
            lines += [f"{k}: {show(k, v)}" for k, v in e["inner"]
                      if k.lower() in INNER_KEYS_LC or k.startswith("HP-Outer")]
            lines += ["```"]
    with open(os.path.join(a.out, "INDEX.md"), "a" if a.append_index else "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
