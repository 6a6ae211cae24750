"""A reference receiver for imfed's bridge pushes (docs/bridge.md), to copy into a bridged IM
system: it checks each transaction's HMAC-SHA256 signature, takes each txnId once (imfed sends
a transaction again until it gets a 2xx, so a repeat must be acknowledged and ignored), and
hands the events on in order; here it appends them to a JSON-lines file.  It also answers
imfed's questions about the system's users (``GET /users/<phone>``, signed the same way) from
a JSON file of ``{phone: {"name": ..., "verifyType": 1|2}}``.

    python examples/bridge_receiver.py --listen 127.0.0.1:8800 --key PUSH_TOKEN \
        --out events.jsonl --users users.json

Only the standard library and Twisted (which imfed brings) are used."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os

from twisted.web.resource import Resource

__all__ = ["Receiver"]


class Receiver(Resource):
    """``POST /transactions``, ``GET /users/<phone>``."""

    isLeaf = True

    def __init__(self, key: str, out_path: str, users: dict | None = None) -> None:
        super().__init__()
        self.key, self.out_path = key.encode("utf-8"), out_path
        self.users = users or {}
        self.seen = set()
        if os.path.exists(out_path + ".txns"):
            with open(out_path + ".txns") as f:
                self.seen = {line.strip() for line in f}

    def _signed(self, request, signed: bytes) -> bool:
        signature = (request.getHeader(b"x-imfed-signature") or b"").decode("latin-1")
        expected = "sha256=" + hmac.new(self.key, signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(signature, expected)

    def render_GET(self, request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        if not request.path.startswith(b"/users/"):
            request.setResponseCode(404)
            return b'{"error": "GET /users/<phone>"}'
        if not self._signed(request, request.path):
            request.setResponseCode(401)
            return b'{"error": "bad signature"}'
        user = self.users.get(request.path[len(b"/users/"):].decode("utf-8", "replace"))
        if user is None:
            request.setResponseCode(404)
            return b'{"error": "no such user"}'
        return json.dumps(user, ensure_ascii=False).encode("utf-8")

    def render_POST(self, request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        if request.path.rstrip(b"/") != b"/transactions":
            request.setResponseCode(404)
            return b'{"error": "POST /transactions"}'
        body = request.content.read()
        if not self._signed(request, body):
            request.setResponseCode(401)
            return b'{"error": "bad signature"}'
        txn = json.loads(body)
        if txn["txnId"] not in self.seen:
            with open(self.out_path, "a", encoding="utf-8") as out:
                for event in txn["events"]:
                    # A real system turns each event into a message, notice or request of
                    # its own protocol for event["userID"] here.
                    out.write(json.dumps(event, ensure_ascii=False) + "\n")
            with open(self.out_path + ".txns", "a") as f:
                f.write(txn["txnId"] + "\n")
            self.seen.add(txn["txnId"])
        return b"{}"


def main() -> None:
    from twisted.internet import reactor
    from twisted.web.server import Site

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:8800")
    p.add_argument("--key", required=True, help="the node's [bridge] push_token")
    p.add_argument("--out", default="events.jsonl")
    p.add_argument("--users", help="a JSON file {phone: {name, verifyType}}: the system's users")
    args = p.parse_args()
    users = {}
    if args.users:
        with open(args.users, encoding="utf-8") as f:
            users = json.load(f)
    host, _, port = args.listen.rpartition(":")
    reactor.listenTCP(int(port), Site(Receiver(args.key, args.out, users)), interface=host)
    reactor.run()


if __name__ == "__main__":
    main()
