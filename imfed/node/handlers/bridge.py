"""An existing IM system acting for its users (docs/bridge.md): it presents the bridge token
instead of a user's session and names the user it acts for (``?user_id=``), on any call of
the client API, as a Matrix application service does; it provisions its users first.  The
same handlers as for a user's own client do the rest."""

from __future__ import annotations

import hmac
from typing import Callable

from ...wire.errors import Forbidden, NotFound, Unauthorized
from ...wire.message_info import split_id
from ..store import users
from .accounts import add_account
from ..store.unit import NodeStore

__all__ = ["BridgeAccess", "NO_PASSWORD"]

NO_PASSWORD = "!bridge"
"""The password hash of a user the bridge provisioned: nothing logs in with it."""


class BridgeAccess:
    def __init__(self, store: NodeStore, owns: Callable[[str], bool], server_id: str,
                 token: str | None = None) -> None:
        """``owns(phone)``: is this one of the system's users; ``token``: the system's bridge
        token (None: a system inside the daemon, the XMPP gateway, which presents none)."""
        self.store, self.owns, self.server_id = store, owns, server_id
        self._token = token.encode("ascii") if token is not None else None

    def presented(self, token: str) -> bool:
        """Is this the bridge token?  (Compared in constant time.)"""
        return self._token is not None and hmac.compare_digest(
            token.encode("utf-8", "replace"), self._token)

    def _owned(self, phone: str) -> None:
        if not self.owns(phone):
            raise Forbidden("%s is not one of the bridged system's users" % phone,
                            "outside_namespace")

    async def act_as(self, user_id: str | None) -> users.User:
        """The user the system acts for: one of this server's, in the system's namespace."""
        if not user_id:
            raise Unauthorized("the bridge token acts for a user: ?user_id=<userID>",
                               "no_user_id")
        parts = split_id(user_id)
        if parts is None or parts[1] != self.server_id:
            raise Forbidden("%s is not a user of this server" % user_id, "outside_namespace")
        self._owned(parts[0])
        user = await self.store.run(users.get_user, user_id)
        if user is None:
            raise NotFound("no user %s (provision it first)" % user_id, "unknown_user")
        return user

    async def provision(self, phone: str, name: str, verify_type: int = 2,
                        searchable: bool = True) -> tuple[users.User, bool]:
        """(the user, whether it was made now): a user of the system's, made once."""
        self._owned(phone)
        existing = await self.store.run(users.get_user, "%s@%s" % (phone, self.server_id))
        if existing is not None:
            return existing, False
        user = await self.store.run(add_account, self.server_id, phone, name, NO_PASSWORD,
                                    self.store.now_ms(), verify_type=verify_type,
                                    searchable=searchable)
        return user, True
