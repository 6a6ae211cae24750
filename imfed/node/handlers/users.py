"""Finding people: this server's users (for its own users and for other servers, §6.4.1.3,
6.4.1.8-9) and other servers' (search fanned out, a profile asked of its server)."""

from __future__ import annotations

from twisted.internet.defer import DeferredList, ensureDeferred

from ...storage import transaction
from ...wire.errors import NotFound
from ...wire.message_info import server_of
from ..store import files, friends, users
from ..store.events import emit
from ..directory import Directory
from ..clients.reach import Reach
from ..clients.remote import UNREACHABLE, FederationClient, PeerFailed
from ..store.unit import NodeStore
from .sources import UserSources

__all__ = ["UsersHandler"]


@transaction
def _edit_profile(work, user_id: str, name: str | None, portrait: str | None,
                  now_ms: int) -> users.User:
    """The user's new name and/or portrait (a checked upload of the user's, made public; ""
    for none; the one before is no longer public), in one change: the user's every stream
    hears of it (a ``profile`` event)."""
    if name is not None:
        users.set_name(work, user_id, name, now_ms)
    if portrait is not None:
        before = users.get_user(work, user_id).portrait
        if before and before != portrait and files.get_file(work, before) is not None:
            files.withdraw(work, before, files.PUBLIC)
        if portrait:
            files.grant(work, portrait, files.PUBLIC)
        users.set_portrait(work, user_id, portrait, now_ms)
    user = users.get_user(work, user_id)
    emit(work, user_id, "profile", {"userInfo": user.info()}, now_ms)
    return user


class UsersHandler:
    def __init__(self, store: NodeStore, directory: Directory, reach: Reach,
                 remote: FederationClient, *, search_timeout: float,
                 sources: UserSources | None = None) -> None:
        self.store, self.directory, self.reach, self.remote = store, directory, reach, remote
        self.sources = sources or UserSources(store, directory.server_id)
        self.server_id = directory.server_id
        self.search_timeout = search_timeout

    async def local(self, uid: str) -> users.User:
        """A user of this server by its canonical ID (the caller has checked the server
        part); 404 when there is none (a user of a bridged system is asked of it first)."""
        await self.sources.ensure(uid)
        user = await self.store.run(users.get_user, uid)
        if user is None:
            raise NotFound("no user %s" % uid, "unknown_user")
        return user

    async def edit_profile(self, user, name: str | None = None,
                           portrait: str | None = None) -> users.User:
        return await self.store.run(_edit_profile, user.user_id, name, portrait,
                                    self.store.now_ms())

    async def find_local(self, query: str) -> list[users.User]:
        await self.sources.ensure("%s@%s" % (query, self.server_id), searching=True)
        return await self.store.run(users.search, query)

    async def is_friend(self, owner_id: str, friend_id: str) -> bool:
        return await self.store.run(friends.is_friend, owner_id, friend_id)

    async def info(self, uid: str) -> tuple[dict, int | None]:
        """(userInfo, verifyType or None) of any user of the federation."""
        server = server_of(uid)
        if server == self.server_id:
            user = await self.local(uid)
            return user.info(), user.verify_type
        peer = await self.reach.require(server)
        try:
            return await self.remote.user(peer, uid), None
        except PeerFailed as e:
            raise e.api_error("user %s" % uid, "unknown_user") from None

    async def search(self, query: str, remote: bool = True) -> tuple[list[dict], dict]:
        """(userInfos, {serverId: "ok" | why not}): this server's searchable users, and
        (``remote``) every reachable permitted server's, asked at once, each bounded by the
        search timeout."""
        found = [u.info() for u in await self.find_local(query)]
        servers = {self.server_id: "ok"}
        if remote:
            more, answered = await self._search_remote(query)
            found += more
            servers.update(answered)
        return found, servers

    async def _search_remote(self, query: str) -> tuple[list, dict]:
        peers = await self.reach.callable_peers()
        clock = self.store.clock

        async def ask(peer):
            d = ensureDeferred(self.remote.find_users(peer, query))
            d.addTimeout(self.search_timeout, clock)
            return await d

        results = await DeferredList([ensureDeferred(ask(p)) for p in peers],
                                     consumeErrors=True)
        found, servers = [], {}
        for peer, (ok, result) in zip(peers, results):
            if ok:
                servers[peer.server_id] = "ok"
                found += result
            elif result.check(PeerFailed) and result.value.kind != UNREACHABLE:
                servers[peer.server_id] = "error: %s" % result.value.message
            else:
                # "unreachable: <why>", the server named once (a PeerError names it already).
                why = result.getErrorMessage() or "no answer in time"
                prefix = peer.server_id + " unreachable: "
                servers[peer.server_id] = "unreachable: " + (
                    why[len(prefix):] if why.startswith(prefix) else why)
        return found, servers
