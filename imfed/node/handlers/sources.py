"""Users that live in another system (docs/bridge.md): the bridged IM system's, the XMPP
server's.  The first time one of them is named (by another server, or by a user here) the
system is asked whether the user exists, and the user is made here (no password: it never
logs in to imfed); an answer of "no such user" is remembered for a minute, a system that
does not answer in time is a 503, not a "no"."""

from __future__ import annotations

from typing import Awaitable, Protocol

from ...wire.errors import Unavailable
from ...wire.message_info import split_id
from ..store import users
from ..store.unit import NodeStore

__all__ = ["UserSource", "UserSources"]


class UserSource(Protocol):
    name: str
    authoritative: bool
    """Does the system say who exists (the bridge API: yes); or is every ID of its namespace
    taken as a user when named (XMPP servers do not say which accounts exist)?  A search
    asks only the former."""

    def owns(self, phone: str) -> bool: ...

    def lookup(self, phone: str) -> Awaitable["users.User | None"]:
        """The user, made here if it exists in the system; None when it does not."""


class UserSources:
    def __init__(self, store: NodeStore, server_id: str, *,
                 forget_seconds: float = 60.0) -> None:
        self.store, self.server_id, self.clock = store, server_id, store.clock
        self.forget_seconds = forget_seconds
        self.sources: list[UserSource] = []
        self._known: set[str] = set()
        self._absent: dict[str, float] = {}

    def add(self, source: UserSource) -> None:
        self.sources.append(source)

    def _source(self, user_id: str) -> UserSource | None:
        parts = split_id(user_id)
        if parts is None or parts[1] != self.server_id:
            return None
        return next((s for s in self.sources if s.owns(parts[0])), None)

    async def ensure(self, user_id: str, searching: bool = False) -> None:
        """Make sure a user of a system is here before it is looked up (nothing for anyone
        else, and nothing read once it is known)."""
        if user_id in self._known or not self.sources:
            return
        source = self._source(user_id)
        if source is None or searching and not source.authoritative:
            return
        if await self.store.read(users.get_user, user_id) is not None:
            self._known.add(user_id)
            return
        if self._absent.get(user_id, 0) > self.clock.seconds():
            return
        try:
            user = await source.lookup(user_id.split("@")[0])
        except Exception as e:
            raise Unavailable("%s did not answer for %s: %s" % (source.name, user_id, e),
                              "source_unavailable") from None
        if user is None:
            self._absent[user_id] = self.clock.seconds() + self.forget_seconds
            if len(self._absent) > 10000:
                now = self.clock.seconds()
                self._absent = {k: v for k, v in self._absent.items() if v > now}
        else:
            self._known.add(user_id)
