"""Friends (§6.4.1.4-6.4.1.9): a user's requests, answers and deletions, and those other
servers bring for our users."""

from __future__ import annotations

from typing import List

from ...storage import transaction
from ...wire.errors import BadRequest, Conflict, Forbidden, NotFound
from ...wire.message_info import server_of
from ...wire.records import UserInfo, VerifyType
from ..store import friends, users
from ..clients.reach import Reach
from ..store.unit import NodeStore
from .sources import UserSources

__all__ = ["FriendsHandler"]


# -- the rules, each checked in the unit of work that writes what it allows --

def _takes_requests(work, user_id: str) -> None:
    target = users.get_user(work, user_id)
    if target is None:
        raise NotFound("no user %s" % user_id, "unknown_user")
    if target.verify_type == VerifyType.REFUSE_ALL:
        raise Forbidden("%s accepts no friend requests" % user_id, "refuses_friends")


@transaction
def _request(work, user: users.User, to_id: str, remark: str, server_id: str,
             now_ms: int) -> str:
    if to_id == user.user_id:
        raise BadRequest("one cannot befriend oneself", "bad_userID")
    if friends.is_friend(work, user.user_id, to_id):
        raise Conflict("%s is already a friend" % to_id, "already_friends")
    if server_of(to_id) == server_id:
        _takes_requests(work, to_id)
        rid = friends.add_request(work, user.user_id, to_id, remark, user.info(), now_ms)
        friends.show_request(work, rid, user.user_id, to_id, remark, user.info(), now_ms)
        return rid
    rid = friends.add_request(work, user.user_id, to_id, remark, {}, now_ms)
    friends.queue_request(work, user.user_id, user.info(), to_id, remark, now_ms)
    return rid


@transaction
def _receive_request(work, from_id: str, to_id: str, remark: str, info: dict,
                     now_ms: int) -> None:
    _takes_requests(work, to_id)
    if friends.is_friend(work, to_id, from_id) or friends.pending(work, from_id, to_id):
        return
    rid = friends.add_request(work, from_id, to_id, remark, info, now_ms)
    friends.show_request(work, rid, from_id, to_id, remark, info, now_ms)


@transaction
def _answer(work, request_id: str, user: users.User, agree: bool, server_id: str,
            now_ms: int) -> None:
    found = friends.pending_to(work, request_id, user.user_id)
    if found is None:
        raise NotFound("no pending request %s" % request_id, "unknown_request")
    from_id, from_info = found
    friends.decide(work, request_id, agree, now_ms)
    if agree:
        friends.befriend(work, user.user_id, from_id, from_info, now_ms)
    if server_of(from_id) == server_id:
        friends.answered(work, from_id, user.user_id, agree, user.info(), now_ms)
    else:
        friends.queue_answer(work, user.user_id, user.info(), from_id, agree, now_ms)


@transaction
def _receive_answer(work, requester: str, responder: str, agree: bool, info: dict,
                    now_ms: int) -> None:
    if users.get_user(work, requester) is None:
        raise NotFound("no user %s" % requester, "unknown_user")
    if friends.pending(work, requester, responder) is None and \
            not friends.is_friend(work, requester, responder):
        raise Conflict("%s asked %s nothing" % (requester, responder), "no_request")
    friends.answered(work, requester, responder, agree, info, now_ms)


@transaction
def _delete(work, user: users.User, friend_id: str, server_id: str, now_ms: int) -> None:
    if not friends.unfriend(work, user.user_id, friend_id):
        raise NotFound("%s is not a friend" % friend_id, "not_friends")
    if server_of(friend_id) == server_id:
        friends.friend_deleted(work, friend_id, user.user_id, now_ms)
    else:
        friends.queue_delete(work, user.user_id, friend_id, now_ms)


@transaction
def _receive_delete(work, local_user: str, by: str, now_ms: int) -> None:
    if users.get_user(work, local_user) is None:
        raise NotFound("no user %s" % local_user, "unknown_user")
    friends.friend_deleted(work, local_user, by, now_ms)


class FriendsHandler:
    def __init__(self, store: NodeStore, reach: Reach, server_id: str,
                 sources: UserSources | None = None) -> None:
        self.store, self.reach, self.server_id = store, reach, server_id
        self.sources = sources or UserSources(store, server_id)

    async def list(self, user) -> List[dict]:
        return [f.to_client() for f in await self.store.run(friends.friends, user.user_id)]

    async def requests(self, user) -> List[dict]:
        return [r.to_client(user.user_id)
                for r in await self.store.run(friends.friend_requests, user.user_id)]

    async def request(self, user, target: str, remark: str) -> str:
        """Ask ``target`` (canonical ID) to be friends; the request's ID."""
        if server_of(target) != self.server_id:
            await self.reach.require(server_of(target))
        else:
            await self.sources.ensure(target)
        return await self.store.run(_request, user, target, remark,
                                    self.server_id, self.store.now_ms())

    async def answer(self, user, request_id: str, agree: bool) -> None:
        await self.store.run(_answer, request_id, user, agree, self.server_id,
                             self.store.now_ms())

    async def delete(self, user, friend_id: str) -> None:
        await self.store.run(_delete, user, friend_id, self.server_id,
                             self.store.now_ms())

    # What other servers bring (the route has checked that the caller speaks for ``owner``).

    async def receive_request(self, owner: str, target: str, remark: str, info) -> None:
        await self.store.run(_receive_request, owner, target, remark,
                             UserInfo.from_wire(info, owner).to_wire(), self.store.now_ms())

    async def receive_answer(self, requester: str, owner: str, agree: bool, info) -> None:
        await self.store.run(_receive_answer, requester, owner, agree,
                             UserInfo.from_wire(info, owner).to_wire(), self.store.now_ms())

    async def receive_delete(self, friend_id: str, owner: str) -> None:
        await self.store.run(_receive_delete, friend_id, owner,
                             self.store.now_ms())
