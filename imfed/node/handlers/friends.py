"""Friends (§6.4.1.4-6.4.1.9): a user's requests, answers and deletions, and those other
servers bring for our users."""

from __future__ import annotations

from typing import List

from ...wire.messages import server_of
from ...wire.records import UserInfo
from .. import friends
from ..reach import Reach
from ..unit import NodeStore
from .sources import UserSources

__all__ = ["FriendsHandler"]


class FriendsHandler:
    def __init__(self, store: NodeStore, reach: Reach, server_id: str,
                 sources: UserSources | None = None) -> None:
        self.store, self.reach, self.server_id = store, reach, server_id
        self.sources = sources or UserSources(store, server_id)

    async def list(self, user) -> List[dict]:
        return await self.store.run(friends.friends, user.user_id)

    async def requests(self, user) -> List[dict]:
        return await self.store.run(friends.friend_requests, user.user_id)

    async def request(self, user, target: str, remark: str) -> str:
        """Ask ``target`` (canonical ID) to be friends; the request's ID."""
        if server_of(target) != self.server_id:
            await self.reach.require(server_of(target))
        else:
            await self.sources.ensure(target)
        return await self.store.run(friends.request_friend, user, target, remark,
                                    self.server_id, self.store.now_ms())

    async def answer(self, user, request_id: str, agree: bool) -> None:
        await self.store.run(friends.answer_request, request_id, user, agree, self.server_id,
                             self.store.now_ms())

    async def delete(self, user, friend_id: str) -> None:
        await self.store.run(friends.delete_friend, user, friend_id, self.server_id,
                             self.store.now_ms())

    # What other servers bring (the route has checked that the caller speaks for ``owner``).

    async def receive_request(self, owner: str, target: str, remark: str, info) -> None:
        await self.store.run(friends.receive_friend_request, owner, target, remark,
                             UserInfo.from_wire(info, owner).to_wire(), self.store.now_ms())

    async def receive_answer(self, requester: str, owner: str, agree: bool, info) -> None:
        await self.store.run(friends.receive_friend_answer, requester, owner, agree,
                             UserInfo.from_wire(info, owner).to_wire(), self.store.now_ms())

    async def receive_delete(self, friend_id: str, owner: str) -> None:
        await self.store.run(friends.receive_friend_delete, friend_id, owner,
                             self.store.now_ms())
