"""The node's application layer built in one place: the store's unit of work, who may be
reached, the outbound queue, the group check, and the handlers that hold every operation.
:class:`~imfed.node.service.NodeRole` builds it over the real store, directory and
federation client; the tests build the same graph over an in-memory store, a stand-in
federation client and a fake clock (tests/test_handlers.py, tests/test_routes_memory.py).

What is not here is what needs the process: TLS identities, listeners, the periodic services
other than the queue, the bridge and the XMPP gateway (service.py)."""

from __future__ import annotations

import attrs

from ..config import NodeConfig
from .store import friends, groups, messages
from .handlers.access import AccessControl
from .directory import Directory
from .store.events import EventHub
from .services.groupsync import GroupSync
from .handlers.files import FilesHandler
from .handlers.friends import FriendsHandler
from .handlers.groups import GroupsHandler
from .handlers.messages import MessagesHandler, StrangerLimits
from .handlers.sources import UserSources
from .handlers.users import UsersHandler
from .services.outbox import Outbox
from .clients.reach import Reach
from .clients.remote import FederationClient
from .store.unit import NodeStore

__all__ = ["Application", "build"]


@attrs.define
class Application:
    store: NodeStore
    hub: EventHub
    reach: Reach
    remote: FederationClient
    outbox: Outbox
    group_sync: GroupSync
    sources: UserSources
    files: FilesHandler
    messages: MessagesHandler
    users: UsersHandler
    friends: FriendsHandler
    groups: GroupsHandler


def build(n: NodeConfig, *, db, clock, directory: Directory, acl: AccessControl,
          remote: FederationClient, file_dir: str, cluster=None) -> Application:
    """The application layer of the node ``n`` describes, over ``db`` (a Database or the
    tests' MemoryDatabase) and ``remote`` (the federation client)."""
    hub = EventHub()
    store = NodeStore(db, hub, clock, n.server_id)
    reach = Reach(directory, acl, n.peer_status_max_age_seconds, clock)
    outbox = Outbox(store=store, client=remote, reach=reach, clock=clock,
                    initial_seconds=n.outbox_retry_initial_seconds,
                    max_seconds=n.outbox_retry_max_seconds,
                    give_up_seconds=n.outbox_give_up_seconds, window=n.outbox_pipeline,
                    cluster=cluster)
    # What an item's end means here, in the transaction that removes it.
    outbox.on_done("chat", messages.delivered)
    outbox.on_done("add_users", friends.request_failed)
    outbox.on_done("invite_grprep", groups.joined)
    group_sync = GroupSync(store=store, remote=remote, reach=reach,
                           seconds=n.group_sync_seconds)
    # Users of a bridged system, or of the XMPP gateway, are asked of it the first time they
    # are named (handlers/sources.py): the role adds those sources.
    sources = UserSources(store, n.server_id)
    file_handler = FilesHandler(store, directory, reach, remote, file_dir=file_dir,
                                max_file_bytes=n.max_file_bytes)
    message_handler = MessagesHandler(
        store, directory, reach, file_handler, recall_window_seconds=n.recall_window_seconds,
        recall_grace_seconds=n.recall_grace_seconds, sources=sources,
        strangers=StrangerLimits(n.stranger_messages_per_sender, n.stranger_messages_per_user))
    return Application(
        store=store, hub=hub, reach=reach, remote=remote, outbox=outbox,
        group_sync=group_sync, sources=sources, files=file_handler, messages=message_handler,
        users=UsersHandler(store, directory, reach, remote,
                           search_timeout=n.search_timeout_seconds, sources=sources),
        friends=FriendsHandler(store, reach, n.server_id, sources),
        groups=GroupsHandler(store, reach, remote, file_handler, message_handler, group_sync,
                             n.server_id))
