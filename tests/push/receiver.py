#!/usr/bin/env python3
"""A Web Push service for coid's tests, written with implementations that are not coid's:
`http_ece` decrypts RFC 8291 aes128gcm bodies and `cryptography` verifies RFC 8292 VAPID
ES256 signatures.

    receiver.py --port PORT --config CONFIG.json --log LOG.jsonl

CONFIG.json (written by the Rust test before start):
    {"endpoints": {"<name>": {"private_key": "<b64url raw P-256 scalar>",
                              "auth": "<b64url 16 bytes>",
                              "responses": [{"status": 429, "retry_after": "2"},
                                            {"status": 500}, {"stall": 10}]}}}
A POST to /push/<name> takes the next scripted response (201 once the script is used up);
`stall` waits that many seconds before answering 201; `location` adds a `Location` header
(with a 3xx `status`: a real redirect). Every POST appends one JSON line to
LOG.jsonl: the endpoint name, the status sent, the RFC 8030 headers (and WebPush-Validation),
whether the VAPID header verified (and its claims, plus its key `k`), and the decrypted
plaintext or the decryption error.
Listens on 127.0.0.1 only. Exits on SIGTERM.
"""

import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY = 8192


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_vapid(header, expected_aud):
    """Returns (ok, claims or error text) for an `Authorization: vapid t=..., k=...`."""
    if not header or not header.startswith("vapid "):
        return False, "no vapid authorization"
    params = dict(p.strip().split("=", 1) for p in header[len("vapid "):].split(","))
    token, key = params.get("t", ""), params.get("k", "")
    parts = token.split(".")
    if len(parts) != 3:
        return False, "malformed JWT"
    jwt_header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    if jwt_header.get("alg") != "ES256":
        return False, f"alg {jwt_header.get('alg')}"
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
    raw = b64url_decode(parts[2])
    if len(raw) != 64:
        return False, "signature is not raw r||s"
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(signature, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False, "bad signature"
    now = time.time()
    if claims.get("aud") != expected_aud:
        return False, f"aud {claims.get('aud')!r} != {expected_aud!r}"
    if not (now < claims.get("exp", 0) <= now + 24 * 3600 + 60):
        return False, f"exp {claims.get('exp')} out of range"
    if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
        return False, f"sub {claims.get('sub')!r}"
    claims = dict(claims, k=key)
    return True, claims


class State:
    def __init__(self, config, log_path, port):
        self.lock = threading.Lock()
        self.endpoints = config["endpoints"]
        self.scripts = {name: list(e.get("responses", [])) for name, e in self.endpoints.items()}
        self.log_path = log_path
        self.aud = f"http://127.0.0.1:{port}"

    def next_response(self, name):
        with self.lock:
            script = self.scripts.get(name)
            return script.pop(0) if script else {"status": 201}

    def mark_stall(self, entry):
        """Notes a request that is about to stall, before it is answered and recorded:
        a test can then act while the sender is waiting for the answer."""
        with self.lock, open(self.log_path + ".stalls", "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def record(self, entry):
        with self.lock, open(self.log_path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


def decrypt(endpoint, body):
    scalar = int.from_bytes(b64url_decode(endpoint["private_key"]), "big")
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    plain = http_ece.decrypt(
        body, private_key=private, auth_secret=b64url_decode(endpoint["auth"]), version="aes128gcm"
    )
    return plain.decode("utf-8")


class Handler(BaseHTTPRequestHandler):
    state = None

    def do_POST(self):
        name = self.path.removeprefix("/push/")
        endpoint = self.state.endpoints.get(name)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(length, MAX_BODY))
        entry = {
            "endpoint": name,
            "received": time.time(),
            "ttl": self.headers.get("TTL"),
            "urgency": self.headers.get("Urgency"),
            "topic": self.headers.get("Topic"),
            "content_encoding": self.headers.get("Content-Encoding"),
            "validation": self.headers.get("WebPush-Validation"),
            "body_len": len(body),
        }
        entry["vapid_ok"], entry["vapid"] = verify_vapid(self.headers.get("Authorization"), self.state.aud)
        if endpoint is None:
            entry["status"] = 404
        else:
            try:
                entry["plaintext"] = decrypt(endpoint, body)
            except Exception as err:  # noqa: BLE001 - any failure is a test finding
                entry["decrypt_error"] = f"{type(err).__name__}: {err}"
            response = self.state.next_response(name)
            if "stall" in response:
                self.state.mark_stall(entry)
                time.sleep(response["stall"])
            entry["status"] = response.get("status", 201)
            entry["retry_after"] = response.get("retry_after")
            entry["location"] = response.get("location")
        self.state.record(entry)
        self.send_response(entry["status"])
        if entry.get("retry_after") is not None:
            self.send_header("Retry-After", entry["retry_after"])
        if entry.get("location") is not None:
            self.send_header("Location", entry["location"])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    Handler.state = State(config, args.log, args.port)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
