#!/usr/bin/env python3
"""A receiver of crossmatch's webhook deliveries, standard library only.

Usage:
    webhook_receiver.py --secret-file FILE [--host 127.0.0.1] [--port 8470] [--out FILE]
    webhook_receiver.py --self-test

The node POSTs each alert event (and each resync marker) as JSON, following the Standard
Webhooks scheme. The headers this receiver checks:

    webhook-id          the event id (`<incarnation hex>-<seq>`), or `resync-<id>` for a
                        marker; a repeated id is answered 200 and dropped (ids are kept 10
                        minutes, twice the timestamp tolerance).
    webhook-timestamp   Unix seconds of this attempt; more than 300 s from this host's clock
                        is refused (400), so a captured delivery cannot be replayed later.
    webhook-signature   one or more `v1,<base64>` separated by spaces (two while the node's
                        key is rotated): HMAC-SHA256, keyed by the secret, over
                        `<webhook-id>.<webhook-timestamp>.<body>`. Each is compared with
                        `hmac.compare_digest` (constant time) against every key held here;
                        none matching is refused (401).
    content-type        must be application/json (else 415).

The secret file (mode 0600) holds one or two lines `whsec_<base64>`, as the node's
`[webhook] secret_file` does: both keys are accepted while a key is rotated.

Each delivery accepted is written as one JSON line to --out (default stdout):
    {"webhook_id": ..., "type": ..., "verified": true}
and a repeat as {"webhook_id": ..., "duplicate": true}. The body is not written: it carries
no raw identifier, but a receiver should keep no more than it needs. Only a 2xx tells the node
the event was delivered; anything else makes it retry.
"""

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import os
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECS = 300
REMEMBER_IDS_SECS = 600
MAX_BODY_BYTES = 1 << 20
MAX_REMEMBERED_IDS = 100_000


def read_keys(path):
    """The keys of a secret file: one or two `whsec_<base64>` lines; refused unless 0600."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} is readable by group or others (mode {mode:o}); chmod 600 it")
    keys = []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if not line.startswith("whsec_"):
                raise ValueError("a key line must start with whsec_")
            key = base64.b64decode(line[len("whsec_"):], validate=True)
            if not 24 <= len(key) <= 64:
                raise ValueError("a key must be 24 to 64 bytes")
            keys.append(key)
    if not 1 <= len(keys) <= 2:
        raise ValueError("the secret file must hold one or two keys")
    return keys


def sign(key, webhook_id, timestamp, body):
    """The `v1,<base64>` signature of one delivery."""
    message = webhook_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(keys, webhook_id, timestamp_header, signature_header, body, now):
    """None if the delivery is authentic and fresh, else (status, reason)."""
    try:
        timestamp = int(timestamp_header)
    except (TypeError, ValueError):
        return 400, "bad webhook-timestamp"
    if abs(now - timestamp) > TOLERANCE_SECS:
        return 400, "webhook-timestamp more than 300 s off"
    if not webhook_id or len(webhook_id) > 256:
        return 400, "bad webhook-id"
    expected = [sign(key, webhook_id, timestamp, body).encode() for key in keys]
    matched = False
    for candidate in (signature_header or "").split(" "):
        if not candidate.startswith("v1,"):
            continue
        for want in expected:
            # Every pair is compared, so the time taken says nothing about which matched.
            matched |= hmac.compare_digest(candidate.encode(), want)
    if not matched:
        return 401, "no valid signature"
    return None


class Seen:
    """The webhook-ids accepted in the last REMEMBER_IDS_SECS, bounded."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ids = {}

    def first_time(self, webhook_id, now):
        with self.lock:
            for old in [i for i, at in self.ids.items() if now - at > REMEMBER_IDS_SECS]:
                del self.ids[old]
            if webhook_id in self.ids:
                return False
            if len(self.ids) >= MAX_REMEMBERED_IDS:
                self.ids.pop(next(iter(self.ids)))
            self.ids[webhook_id] = now
            return True


def make_handler(keys, seen, out, out_lock):
    class Handler(BaseHTTPRequestHandler):
        def answer(self, status, reason=""):
            data = (reason + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def emit(self, record):
            with out_lock:
                out.write(json.dumps(record) + "\n")
                out.flush()

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                return self.answer(413, "body too large")
            body = self.rfile.read(length)
            if (self.headers.get("content-type") or "").split(";")[0].strip() != "application/json":
                return self.answer(415, "content-type must be application/json")
            webhook_id = self.headers.get("webhook-id") or ""
            refused = verify(
                keys,
                webhook_id,
                self.headers.get("webhook-timestamp"),
                self.headers.get("webhook-signature"),
                body,
                int(time.time()),
            )
            if refused:
                return self.answer(*refused)
            if not seen.first_time(webhook_id, time.time()):
                self.emit({"webhook_id": webhook_id, "duplicate": True})
                return self.answer(200, "duplicate, dropped")
            try:
                event_type = json.loads(body).get("type")
            except (ValueError, AttributeError):
                event_type = None
            self.emit({"webhook_id": webhook_id, "type": event_type, "verified": True})
            return self.answer(200, "ok")

        def log_message(self, format, *args):
            pass  # No request lines on stderr: the URL and headers are enough to log nothing.

    return Handler


def self_test():
    """The Standard Webhooks specification's example, and the refusals."""
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    webhook_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    signature = sign(key, webhook_id, timestamp, body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", signature
    other = b"\x01" * 32
    both = sign(other, webhook_id, timestamp, body) + " " + signature
    assert verify([key], webhook_id, str(timestamp), signature, body, timestamp) is None
    assert verify([key], webhook_id, str(timestamp), both, body, timestamp) is None
    assert verify([other, key], webhook_id, str(timestamp), signature, body, timestamp) is None
    assert verify([key], webhook_id, str(timestamp), signature, body + b" ", timestamp)[0] == 401
    assert verify([other], webhook_id, str(timestamp), signature, body, timestamp)[0] == 401
    assert verify([key], webhook_id, str(timestamp), signature, body, timestamp + 301)[0] == 400
    assert verify([key], webhook_id, "soon", signature, body, timestamp)[0] == 400
    seen = Seen()
    assert seen.first_time("a", 0) and not seen.first_time("a", 599) and seen.first_time("a", 1300)
    print("webhook_receiver.py: self-test passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret-file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8470)
    parser.add_argument("--out", help="where to write one JSON line per delivery (default stdout)")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    if not args.secret_file:
        parser.error("--secret-file is required")
    try:
        keys = read_keys(args.secret_file)
    except (OSError, ValueError, binascii.Error) as error:
        print(f"webhook_receiver.py: {error}", file=sys.stderr)
        return 2
    out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout
    handler = make_handler(keys, Seen(), out, threading.Lock())
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"webhook_receiver.py: listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
