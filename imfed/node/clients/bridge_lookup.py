"""Asking the bridged system about its users (docs/bridge.md): when another server (or a user
here) names a user of the system's namespace that imfed has not met, imfed asks
``GET [bridge] url + /users/<phone>``, signed as the pushes are (``X-Imfed-Signature:
sha256=HMAC(push_token, path)``); 200 ``{"name": ..., "verifyType": 1|2}`` makes the user
here, 404 says there is none (remembered for a minute), anything else or no answer within
the timeout is a 503 to whoever asked."""

from __future__ import annotations

import json
from urllib.parse import quote

import treq
from twisted.internet import reactor

from ...config import BridgeConfig
from ...wire.errors import BadRequest
from ...wire.fields import plain
from ...wire.records import VerifyType
from ...peer import PeerError, read_capped
from ..services.bridge_push import ANSWER_LIMIT, signed
from ..handlers.bridge import BridgeAccess

__all__ = ["BridgeUsers"]


class BridgeUsers:
    name, authoritative = "the bridged system", True

    def __init__(self, config: BridgeConfig, access: BridgeAccess, *,
                 timeout: float = 5.0) -> None:
        self.config, self.access, self.timeout = config, access, timeout
        self.base = config.url.rstrip("/")

    def owns(self, phone: str) -> bool:
        return self.config.owns(phone)

    async def lookup(self, phone: str):
        path = "/users/" + quote(phone)
        # No redirect is followed: the signature is for this system alone, and so is the
        # answer that names a user here.
        response = await treq.get(self.base + path, timeout=self.timeout, persistent=False,
                                  allow_redirects=False,
                                  headers=signed(self.config.push_token,
                                                 path.encode("utf-8")))
        try:
            body = await read_capped(response, ANSWER_LIMIT, self.timeout, reactor, self.base)
        except PeerError as e:
            raise RuntimeError(str(e)) from None
        if response.code == 404:
            return None
        if response.code != 200:
            raise RuntimeError("HTTP %d" % response.code)
        try:
            data = json.loads(body)
            name = data.get("name") or phone
            verify = int(data.get("verifyType", VerifyType.ALLOW))
        except (ValueError, AttributeError, TypeError):
            raise RuntimeError("the answer is not a JSON object") from None
        if not isinstance(name, str) or len(name) > 64 or verify not in (1, 2):
            raise RuntimeError("the answer's name or verifyType is not valid")
        try:
            plain(name, "name")
        except BadRequest as e:
            raise RuntimeError("the answer's name: %s" % e.message) from None
        user, _ = await self.access.provision(phone, name, verify_type=verify)
        return user
