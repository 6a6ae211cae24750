"""Groups (§6.4.2, docs/groups.md): what members do, here or through the master, and what
other servers bring: a member's request at the master, or the master's news at a member's
server."""

from __future__ import annotations

import attrs

from ...wire.errors import Forbidden, NotFound, Unavailable
from ...wire.messages import MessageInfo, server_of
from ...wire.records import ChatType, UserInfo
from .. import group_messages, groups
from ..groupsync import GroupSync
from ..reach import Reach
from ..remote import FederationClient, PeerFailed
from ..unit import NodeStore
from .files import FilesHandler
from .messages import MessagesHandler

__all__ = ["GroupsHandler"]


class GroupsHandler:
    def __init__(self, store: NodeStore, reach: Reach, remote: FederationClient,
                 files: FilesHandler, messages: MessagesHandler, sync: GroupSync,
                 server_id: str) -> None:
        self.store, self.reach, self.remote = store, reach, remote
        self.files, self.messages, self.sync = files, messages, sync
        self.server_id = server_id

    def now_ms(self) -> int:
        return self.store.now_ms()

    def _managed_here(self, group_id: str) -> str:
        """A group changed by its owner or admins, who are users of its master (§6.4.2.1):
        from any other server, refused."""
        if server_of(group_id) != self.server_id:
            raise Forbidden("only the owner and admins, users of %s, manage %s"
                            % (server_of(group_id), group_id), "not_admin")
        return group_id

    async def _member(self, user, group_id: str) -> None:
        if await self.store.run(groups.member_type, group_id, user.user_id) is None:
            raise NotFound("no group %s for you" % group_id, "unknown_group")

    # -- what a local user does --

    async def create(self, user, name: str, icon: str) -> groups.Group:
        return await self.store.run(groups.create_group, user, name, self.server_id,
                                    self.now_ms(), icon)

    async def mine(self, user) -> list[dict]:
        return await self.store.run(groups.my_groups, user.user_id)

    async def search(self, query: str) -> list[dict]:
        return await self.store.run(groups.search, query)

    async def info(self, user, group_id: str) -> dict:
        """groupInfo, gset and members as the master knows them: from here, or asked of
        the master."""
        if server_of(group_id) == self.server_id:
            g = await self.store.run(groups.get_group, group_id)
            found = await self.store.run(groups.members, group_id) if g else []
            if g is None or g.dissolved or user.user_id not in [
                    m["userInfo"]["userID"] for m in found]:
                raise NotFound("no group %s for you" % group_id, "unknown_group")
            return {"groupInfo": g.info(len(found)), "gset": g.gset(), "members": found}
        peer = await self.reach.require(server_of(group_id))
        try:
            view = await self.remote.group(peer, group_id, user.user_id)
        except PeerFailed as e:
            raise e.api_error("group %s for you" % group_id, "unknown_group") from None
        return {"groupInfo": view.info, "gset": view.gset, "members": view.members}

    async def invite(self, user, group_id: str, invitees: list[str]) -> int | None:
        """How many invitations went out, or None when the master sends them."""
        for server in {server_of(u) for u in invitees} - {self.server_id}:
            await self.reach.require(server, queue=True)
        for uid in invitees:
            if server_of(uid) == self.server_id:
                await self.messages.sources.ensure(uid)
        if server_of(group_id) == self.server_id:
            return await self.store.run(groups.invite, group_id, user.user_id, user.info(),
                                        invitees, self.server_id, self.now_ms())
        await self.reach.require(server_of(group_id), queue=True)
        await self.store.run(groups.request_invitation, group_id, user, invitees,
                             self.now_ms())
        return None

    async def invitations(self, user) -> list[dict]:
        return await self.store.run(groups.invitations, user.user_id)

    async def answer(self, user, invitation_id: str, agree: bool) -> str:
        return await self.store.run(groups.answer_invitation, invitation_id, user, agree,
                                    self.server_id, self.now_ms())

    async def send(self, user, group_id: str, message_type, content,
                   txn: str | None = None) -> str:
        """A group message: ordered by the master, which shows it to every member (the
        sender too: its ``group_message`` event carries the master's order).  Once per
        ``txn``: again, the first one's ID."""
        info = await self.messages.compose(user, group_id, message_type, content,
                                           ChatType.GROUP)
        if server_of(group_id) != self.server_id:
            await self.reach.require(server_of(group_id), queue=True)
        return await self.store.run(group_messages.send_from_member, info, self.server_id,
                                    self.now_ms(), txn)

    async def history(self, user, group_id: str, after: str, limit: int) -> tuple[list, str]:
        await self._member(user, group_id)
        return await self.store.run(group_messages.history, group_id, after, limit)

    async def recent(self, user, group_id: str, limit: int) -> list:
        """A member's view of the group's newest ``limit`` messages, oldest first."""
        await self._member(user, group_id)
        return await self.store.run(group_messages.recent, group_id, limit)

    async def sync_now(self, user, group_id: str) -> int:
        await self._member(user, group_id)
        try:
            return await self.sync.sync_now(group_id)
        except PeerFailed as e:
            raise Unavailable(e.message, "peer_unreachable") from None

    async def quit(self, user, group_id: str) -> None:
        await self.store.run(groups.quit_group, group_id, user, self.server_id, self.now_ms())

    async def remove(self, user, group_id: str, members: list[str]) -> None:
        await self.store.run(groups.remove_members, self._managed_here(group_id), user,
                             members, self.server_id, self.now_ms())

    async def set_admin(self, user, group_id: str, member: str, admin: bool) -> None:
        await self.store.run(groups.set_admin, self._managed_here(group_id), user, member,
                             admin, self.server_id, self.now_ms())

    async def transfer(self, user, group_id: str, new_owner: str) -> None:
        await self.store.run(groups.transfer, self._managed_here(group_id), user, new_owner,
                             self.server_id, self.now_ms())

    async def update(self, user, group_id: str, **changes) -> groups.Group:
        return await self.store.run(groups.update_group, self._managed_here(group_id), user,
                                    self.server_id, self.now_ms(), **changes)

    async def dissolve(self, user, group_id: str) -> None:
        await self.store.run(groups.dissolve, self._managed_here(group_id), user,
                             self.server_id, self.now_ms())

    # -- what other servers bring; the route has checked who speaks for whom --

    async def mastered(self, group_id: str) -> groups.Group:
        """A live group mastered here; 404 otherwise."""
        return await self.store.run(groups.master_group, group_id, self.server_id)

    async def require_member(self, g: groups.Group, uid: str) -> None:
        if await self.store.run(groups.member_type, g.group_id, uid) is None:
            raise Forbidden("%s is not a member of %s" % (uid, g.group_id), "not_member")

    async def receive_message(self, info: MessageInfo, origin: str) -> None:
        """A member's message from its server, at the master (§6.4.2.9-10); a repeat is
        taken and ignored (docs/protocol.md §5)."""
        if await self.store.run(group_messages.has_message, info.message_id):
            return
        if "fileID" in info.content:
            info = await self.files.copy_from_member(info, origin)
        await self.store.run(group_messages.post_message, info, self.server_id, self.now_ms())

    async def invite_for_member(self, group_id: str, inviter: str, info, invitees: list[str]
                                ) -> None:
        """invite/grpreq at the master: a member on the calling server invites."""
        await self.mastered(group_id)
        await self.store.run(groups.invite, group_id, inviter,
                             UserInfo.from_wire(info, inviter).to_wire(), invitees,
                             self.server_id, self.now_ms())

    async def receive_invitation(self, group_id: str, name: str, inviter: str, info,
                                 invitees: list[str]) -> None:
        """invite/grpreq from the master: invitations for our users."""
        await self.store.run(groups.receive_invitation, group_id, name, inviter,
                             UserInfo.from_wire(info, inviter).to_wire(), invitees,
                             self.now_ms())

    async def receive_answer(self, g: groups.Group, invitee: str, agree: bool, info) -> None:
        await self.store.run(groups.receive_answer, g.group_id, invitee, agree,
                             UserInfo.from_wire(info, invitee).to_wire(), self.server_id,
                             self.now_ms())

    async def receive_quit(self, g: groups.Group, uid: str) -> None:
        await self.store.run(groups.receive_quit, g.group_id, uid, self.server_id,
                             self.now_ms())

    async def group_info(self, g: groups.Group) -> tuple[dict, dict]:
        count = len(await self.store.run(groups.members, g.group_id))
        return g.gset(), g.info(count)

    async def members(self, g: groups.Group) -> list[dict]:
        return await self.store.run(groups.members, g.group_id)

    async def history_for(self, g: groups.Group, origin: str, after: str,
                          limit: int) -> tuple[list, str]:
        """grpchat (§6.4.2.12): history to a server with a member."""
        if origin not in await self.store.run(groups.servers_with_members, g.group_id):
            raise Forbidden("%s has no member in %s" % (origin, g.group_id), "not_member")
        return await self.store.run(group_messages.history, g.group_id, after, limit)

    async def receive_group_chat(self, group_id: str, user_ids: list[str],
                                 info: MessageInfo) -> None:
        info = attrs.evolve(info, recv_id=group_id)
        await self.store.run(group_messages.receive_group_chat, group_id, user_ids, info,
                             self.now_ms())

    async def receive_notify(self, group_id: str, body: dict) -> None:
        await self.store.run(groups.receive_notify, group_id, body, self.server_id,
                             self.now_ms())
