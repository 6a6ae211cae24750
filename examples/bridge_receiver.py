"""A reference receiver for imfed's bridge pushes (docs/bridge.md), to copy into a bridged IM
system: it checks each transaction's HMAC-SHA256 signature, takes each txnId once (imfed sends
a transaction again until it gets a 2xx, so a repeat must be acknowledged and ignored), and
hands the events on in order; here it appends them to a JSON-lines file.

    python examples/bridge_receiver.py --listen 127.0.0.1:8800 --key PUSH_TOKEN --out events.jsonl

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
    """``POST /transactions``."""

    isLeaf = True

    def __init__(self, key: str, out_path: str) -> None:
        super().__init__()
        self.key, self.out_path = key.encode("utf-8"), out_path
        self.seen = set()
        if os.path.exists(out_path + ".txns"):
            with open(out_path + ".txns") as f:
                self.seen = {line.strip() for line in f}

    def render_POST(self, request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        if request.path.rstrip(b"/") != b"/transactions":
            request.setResponseCode(404)
            return b'{"error": "POST /transactions"}'
        body = request.content.read()
        signature = (request.getHeader(b"x-imfed-signature") or b"").decode("latin-1")
        expected = "sha256=" + hmac.new(self.key, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
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
    args = p.parse_args()
    host, _, port = args.listen.rpartition(":")
    reactor.listenTCP(int(port), Site(Receiver(args.key, args.out)), interface=host)
    reactor.run()


if __name__ == "__main__":
    main()
