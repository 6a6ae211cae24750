"""OpenAPI 3.1 descriptions of imfed's three interfaces, built from one table per interface:
the client API (served at ``GET /api/v1/openapi.json``), the management API and the
interconnection (federation) interface.  ``python -m imfed.openapi DIR`` writes them as
``DIR/{client,management,federation}.json`` (docs/openapi/); tests/test_openapi.py checks
that every route is described and every description is a route.

The interconnection paths come from imfed/wire/paths.py; each is also served under
``/sns/v1/`` and with a trailing slash (docs/protocol.md §2).
"""

from __future__ import annotations

import json
import os
import sys

from . import __version__
from .wire import paths

__all__ = ["spec", "INTERFACES", "operations"]

S, I, B = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
ANY: dict = {}


def arr(item) -> dict:
    return {"type": "array", "items": item}


def obj(required=(), **props) -> dict:
    out = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def ref(name: str) -> dict:
    return {"$ref": "#/components/schemas/" + name}


SCHEMAS = {
    "UserInfo": obj(("userID",), phoneNumber=S, remark=S, name=S, portrait=S, userID=S,
                    updateTime=I),
    "MessageInfo": obj(("senderID", "recvID", "messageType", "type", "messageID"),
                       senderID=S, recvID=S, version=S, type={"enum": [1, 2]},
                       messageType={"enum": ["text", "image", "voice", "file", "repeal"]},
                       messageID=S,
                       content={"description": "text: {message}; image, file: {fileID, size, "
                                "md5, name}; voice: the same and duration (seconds)",
                                "type": "object"}),
    "GroupInfo": obj(groupID=S, groupName=S, groupIcon=S, groupMemberNum=I, createUser=S,
                     createTime=I,
                     groupNotice=dict(obj(text=S, userID=S, time=I), description=(
                         "imfed's: the group's announcement, once it has had one "
                         "(docs/groups.md)"))),
    "Gset": obj(isAllow={"enum": [1, 2]}, isVisible={"enum": [1, 2]}),
    "Member": obj(userType={"enum": [1, 2, 3], "description": "1 member, 2 admin, 3 owner"},
                  userInfo=ref("UserInfo")),
    "Message": obj(seq=I, messageInfo=ref("MessageInfo"), createTime=I,
                   state={"enum": ["queued", "sent", "received", "failed"]}, recalled=B,
                   error=S),
    "GroupMessage": obj(gseq=I, messageInfo=ref("MessageInfo"), createTime=I, recalled=B),
    "GroupLine": obj(id=I, after=S, time=I, operType=I, operUser={"type": "object"},
                     users=arr({"type": "object"}), changed=arr(S), groupName=S,
                     groupNotice={"type": "object"}),
    "Event": obj(("seq", "type", "data"), seq=I, data=ANY,
                 type={"enum": ["message", "delivery", "recall", "friend_request",
                                "friend_answer", "friend_deleted", "group_invitation",
                                "group_joined", "group_notify", "group_message",
                                "group_recall", "read", "profile"]}),
    "Error": obj(("code", "errcode"), code={"enum": [1, "1"]}, error=S, desc=S, errcode=S),
    "ServerEntry": obj(serverId=S, serverName=S, serverAddress=S,
                       status={"enum": [0, 1, 2], "description": "0 active, 1 suspended, "
                               "2 deregistered"}, certFingerprint=S),
}


def op(summary: str, *, body=None, query=(), answer=None, auth=None, raw=None) -> dict:
    """One operation: ``query`` names its query parameters (``name`` or ``name!`` when
    required), ``answer`` the fields of a 2xx answer besides code and error."""
    return {"summary": summary, "body": body, "query": query, "answer": answer or {},
            "auth": auth, "raw": raw}


SESSION, SIGNED = "session", "signed"
FRIEND_REQUEST = obj(requestID=S, to=S, remark=S, fromInfo=ref("UserInfo"), status=S,
                     createTime=I, direction={"enum": ["incoming", "outgoing"]},
                     **{"from": S})
V1 = "/api/v1/"
G = V1 + "groups"
AGREE = obj(("agree",), agree=B)

CLIENT = {
    ("POST", V1 + "login"): op("Log in (throttled: 429 with Retry-After)",
                               body=obj(("login", "password"), login=S, password=S),
                               answer=dict(token=S, userInfo=ref("UserInfo"))),
    ("POST", V1 + "logout"): op("End this session", auth=SESSION),
    ("POST", V1 + "logout/all"): op("End every session of this user", auth=SESSION,
                                    answer=dict(ended=I)),
    ("GET", V1 + "me"): op("This user, the settings a client needs, and the seq of the "
                           "user's newest event", auth=SESSION,
                           answer=dict(userInfo=ref("UserInfo"), verifyType=I,
                                       acceptStrangers=B, lastEventSeq=I,
                                       settings=obj(recallWindowSeconds=I, maxFileBytes=I))),
    ("PUT", V1 + "me"): op("Change this user's name or portrait (an uploaded image's fileID)",
                           auth=SESSION, body=obj(name=S, portrait=S),
                           answer=dict(userInfo=ref("UserInfo"))),
    ("POST", V1 + "me/password"): op(
        "Change this user's password (giving the one it has); every other session ends",
        auth=SESSION, body=obj(("password", "newPassword"), password=S, newPassword=S),
        answer=dict(ended=I)),
    ("PUT", V1 + "me/strangers"): op(
        "Whether this user takes one-to-one messages from users who are not friends",
        auth=SESSION, body=obj(("acceptStrangers",), acceptStrangers=B),
        answer=dict(acceptStrangers=B)),
    ("GET", "/"): op("The web client (docs/webclient.md)", raw="text/html"),
    ("POST", V1 + "bridge/users"): op(
        "The bridged system provisions one of its users (bridge token; docs/bridge.md)",
        body=obj(("phoneNumber", "name"), phoneNumber=S, name=S, verifyType={"enum": [1, 2]}),
        answer=dict(userInfo=ref("UserInfo"), created=B)),
    ("GET", "/static/{name}"): op("A file of the web client (asked again each time)",
                                  raw="text/javascript"),
    ("GET", "/static/{version}/{name}"): op(
        "A file of the web client under the client's version (kept a year)",
        raw="text/javascript"),
    ("GET", "/favicon.ico"): op("The web client's icon", raw="image/svg+xml"),
    ("GET", V1 + "openapi.json"): op("This description", raw="application/json"),
    ("GET", V1 + "users/search"): op(
        "Search users here and (remote=1, the default) on every reachable server",
        auth=SESSION, query=("q!", "remote"),
        answer=dict(users=arr(ref("UserInfo")), servers={"type": "object",
                                                          "additionalProperties": S})),
    ("GET", V1 + "users/info"): op("A user of any server", auth=SESSION, query=("userID!",),
                                   answer=dict(userInfo=ref("UserInfo"), verifyType=I)),
    ("GET", V1 + "users/{user_id}/portrait"): op(
        "A user's portrait image, of any server (ETag: its fileID)", auth=SESSION,
        raw="image/png"),
    ("GET", V1 + "friends"): op("Friends", auth=SESSION, answer=dict(friends=arr(obj(
        userID=S, remark=S, userInfo=ref("UserInfo"), since=I)))),
    ("GET", V1 + "friends/requests"): op("Pending friend requests, in and out", auth=SESSION,
                                         answer=dict(requests=arr(FRIEND_REQUEST))),
    ("POST", V1 + "friends/requests"): op("Ask a user to be friends", auth=SESSION,
                                          body=obj(("userID",), userID=S, remark=S),
                                          answer=dict(requestID=S)),
    ("POST", V1 + "friends/requests/{request_id}/answer"): op(
        "Answer a friend request (its requestID)", auth=SESSION, body=AGREE),
    ("POST", V1 + "friends/delete"): op("Delete a friend", auth=SESSION,
                                        body=obj(("userID",), userID=S)),
    ("POST", V1 + "messages"): op("Send a one-to-one message (once per txnId; per-user rate: 429 "
                                  "with Retry-After)", auth=SESSION,
                                  body=obj(("recvID", "messageType", "content"), recvID=S,
                                           messageType=S, content={"type": "object"},
                                           txnId=S),
                                  answer=dict(message=ref("Message"))),
    ("GET", V1 + "messages/search"): op(
        "This user's text messages, one-to-one and in its groups, containing q",
        auth=SESSION, query=("q!", "limit"),
        answer=dict(messages=arr(ref("Message")), groupMessages=arr(ref("GroupMessage")))),
    ("GET", V1 + "messages/{message_id}"): op("A message and its delivery state",
                                              auth=SESSION, answer=dict(message=ref("Message"))),
    ("POST", V1 + "messages/{message_id}/recall"): op("Recall a message within the window",
                                                      auth=SESSION),
    ("GET", V1 + "conversations"): op("Conversations, newest first", auth=SESSION,
                                      answer=dict(conversations=arr(obj(
                                          peerID=S, messages=I, last=ref("Message"),
                                          readSeq=I, unread=I, pinned=B, muted=B)))),
    ("PUT", V1 + "conversations/{peer_id}/pins"): op(
        "Pin or mute the conversation on every device of the user (either may be left out)",
        auth=SESSION, body=obj(pinned=B, muted=B), answer=dict(pinned=B, muted=B)),
    ("POST", V1 + "conversations/{peer_id}/read"): op(
        "Read the conversation to a message's seq (a marker that only moves forward)",
        auth=SESSION, body=obj(("seq",), seq=I), answer=dict(readSeq=I)),
    ("GET", V1 + "conversations/{peer_id}/messages"): op(
        "History, newest first", auth=SESSION, query=("before", "limit"),
        answer=dict(messages=arr(ref("Message")), nextBefore={"type": ["integer", "null"]})),
    ("POST", V1 + "files"): op("Upload a file (the body is the file; per-user rate: 429 with "
                               "Retry-After)", auth=SESSION,
                               query=("name",), answer=dict(fileID=S, size=I, md5=S, name=S)),
    ("GET", V1 + "files/{file_id}"): op(
        "Download a file (relayed from its server): with a session, or with a file link "
        "(user_id, expires, link: docs/bridge.md)", auth=SESSION,
        query=("user_id", "expires", "link"), raw="application/octet-stream"),
    ("GET", V1 + "events"): op("Events after a seq, waiting up to `wait` seconds",
                               auth=SESSION, query=("since", "wait"),
                               answer=dict(events=arr(ref("Event")), last=I)),
    ("GET", V1 + "events/stream"): op("Events as server-sent events (Last-Event-ID resumes)",
                                      auth=SESSION, query=("since",), raw="text/event-stream"),
    ("POST", G): op("Create a group", auth=SESSION,
                    body=obj(("groupName",), groupName=S, groupIcon=S),
                    answer=dict(groupInfo=ref("GroupInfo"), gset=ref("Gset"))),
    ("GET", G): op("My groups", auth=SESSION, answer=dict(groups=arr(obj(
        groupInfo=ref("GroupInfo"), gset=ref("Gset"), userType=I, readGseq=I, unread=I,
        last={"oneOf": [ref("GroupMessage"), {"type": "null"}]}, pinned=B, muted=B)))),
    ("GET", G + "/search"): op("Visible groups of this server by name", auth=SESSION,
                               query=("q!",), answer=dict(groups=arr(obj(
                                   groupInfo=ref("GroupInfo"), gset=ref("Gset"))))),
    ("GET", G + "/invitations"): op("Pending group invitations", auth=SESSION,
                                    answer=dict(invitations=arr(obj(
                                        invitationID=S, groupInfo=ref("GroupInfo"), inviter=S,
                                        createTime=I)))),
    ("POST", G + "/invitations/{invitation_id}/answer"): op(
        "Answer an invitation (its invitationID)", auth=SESSION, body=AGREE,
        answer=dict(groupID=S)),
    ("GET", G + "/{group_id}"): op("A group as its master knows it", auth=SESSION,
                                   answer=dict(groupInfo=ref("GroupInfo"), gset=ref("Gset"),
                                               members=arr(ref("Member")))),
    ("POST", G + "/{group_id}/invite"): op("Invite users", auth=SESSION,
                                           body=obj(("userIDs",), userIDs=arr(S)),
                                           answer=dict(invited={"type": ["integer", "null"]})),
    ("POST", G + "/{group_id}/messages"): op(
        "Send a group message (once per txnId; per-user rate: 429 with Retry-After)",
        auth=SESSION,
        body=obj(("messageType", "content"),
                 messageType=S,
                 content={"type": "object"}, txnId=S),
        answer=dict(messageID=S)),
    ("GET", G + "/{group_id}/messages"): op(
        "Group history held here, oldest first: after a messageID, or a page back from "
        "before (empty: the newest)", auth=SESSION, query=("after", "before", "limit"),
        answer=dict(messages=arr(ref("GroupMessage")), newestMessageID=S,
                    nextBefore={"type": ["string", "null"]}, lines=arr(ref("GroupLine")))),
    ("POST", G + "/{group_id}/messages/{message_id}/recall"): op(
        "Recall a group message (one's own within the window; owner and admins: any)",
        auth=SESSION),
    ("PUT", G + "/{group_id}/announcement"): op(
        "Set the group's announcement (owner, admins; \"\" clears it)", auth=SESSION,
        body=obj(("text",), text=S),
        answer=dict(groupNotice=obj(text=S, userID=S, time=I))),
    ("POST", G + "/{group_id}/read"): op(
        "Read the group to a message's gseq (a marker that only moves forward)",
        auth=SESSION, body=obj(("gseq",), gseq=I), answer=dict(readGseq=I)),
    ("PUT", G + "/{group_id}/pins"): op(
        "Pin or mute the group on every device of the member (either may be left out)",
        auth=SESSION, body=obj(pinned=B, muted=B), answer=dict(pinned=B, muted=B)),
    ("POST", G + "/{group_id}/sync"): op("Check this copy against the master now",
                                         auth=SESSION, answer=dict(fetched=I)),
    ("POST", G + "/{group_id}/quit"): op("Leave a group", auth=SESSION),
    ("POST", G + "/{group_id}/remove"): op("Remove members (owner)", auth=SESSION,
                                           body=obj(("delateMembers",),
                                                    delateMembers=arr(S))),
    ("POST", G + "/{group_id}/admins"): op("Make a member an admin or not (owner)",
                                           auth=SESSION,
                                           body=obj(("userID", "admin"), userID=S, admin=B)),
    ("POST", G + "/{group_id}/transfer"): op("Hand the group to another member (owner)",
                                             auth=SESSION, body=obj(("userID",), userID=S)),
    ("POST", G + "/{group_id}/info"): op("Change name, icon or settings (owner, admins)",
                                         auth=SESSION, body=obj(groupInfo=ref("GroupInfo"),
                                                                gset=ref("Gset")),
                                         answer=dict(gset=ref("Gset"))),
    ("POST", G + "/{group_id}/dissolve"): op("Dissolve the group (owner)", auth=SESSION),
}

_SNS = paths.SNS


def _f(endpoint) -> tuple[str, str]:
    return endpoint.method, endpoint.full_path


USERINFO = dict(userInfo=ref("UserInfo"))
GROUP_Q = ("groupID!",)

FEDERATION = {
    _f(paths.RECEIVENOTIFY): op("A server changed (from the management server)",
                                auth=SIGNED, body=obj(("serverId",), serverId=S)),
    _f(paths.FIND_USERS): op("Search this server's users (§6.4.1.3)", auth=SIGNED,
                             query=("queryStr!",), answer=dict(users=arr(ref("UserInfo")))),
    _f(paths.VERIFY_USERS): op("Does a user take friend requests (§6.4.1.4)", auth=SIGNED,
                               query=("userID!",), answer=dict(verifyType=I)),
    _f(paths.USERS): op("A user's userInfo (§6.4.1.8)", auth=SIGNED, query=("userID!",),
                        answer=USERINFO),
    _f(paths.QUERY_USERS): op("Is the caller's user our user's friend (§6.4.1.9)",
                              auth=SIGNED, query=("userID!", "ownerID!"),
                              answer=dict(isFriend={"enum": [1, 2]})),
    _f(paths.ADD_USERS): op("A friend request for our user (§6.4.1.5)", auth=SIGNED,
                            body=obj(("userID", "ownerID"), userID=S, ownerID=S, remark=S,
                                     userInfo=ref("UserInfo"))),
    _f(paths.RSP_USERS): op("An answer to our user's friend request (§6.4.1.6)", auth=SIGNED,
                            body=obj(("userID", "ownerID", "isAgree"), userID=S, ownerID=S,
                                     isAgree={"enum": [1, 2]}, userInfo=ref("UserInfo"))),
    _f(paths.DEL_USERS): op("A friendship ended (§6.4.1.7)", auth=SIGNED,
                            body=obj(("userID", "ownerID"), userID=S, ownerID=S)),
    _f(paths.CHAT): op("A message (§6.2.8): type 1 for our user, type 2 to a group we master",
                       auth=SIGNED, body=obj(("messageInfo",),
                                             messageInfo=ref("MessageInfo"))),
    _f(paths.DOWNLOAD_FILE): op("A file of ours, signed over its SM3 (§6.2.9)", auth=SIGNED,
                                query=("fileID!",), raw="application/octet-stream"),
    _f(paths.INVITE_GRPREQ): op("Group invitation: to the master from a member's server, or "
                                "from the master to the invitees' (§6.4.2.2)", auth=SIGNED,
                                body=obj(("userID", "reqInfo"), userID=S, reqInfo=obj(
                                    groupInfo=ref("GroupInfo"), userInfo=ref("UserInfo"),
                                    inviteUsers=arr(S)))),
    _f(paths.INVITE_GRPREP): op("An invitee's answer, at the master (§6.4.2.5)", auth=SIGNED,
                                query=GROUP_Q, body=obj(("ownerID", "respResult"),
                                                        ownerID=S, respResult={"enum": [1, 2]},
                                                        userInfo=ref("UserInfo"))),
    _f(paths.QUIT_GRPMEMBER): op("A member leaves, at the master (§6.4.2.7)", auth=SIGNED,
                                 query=GROUP_Q, body=obj(("ownerID",), ownerID=S)),
    _f(paths.REMOVE_GRPMEMBERS): op("Refused: only the owner, a user of the master, removes "
                                    "(§6.4.2.6)", auth=SIGNED, query=GROUP_Q,
                                    body=obj(ownerID=S, delateMembers=arr(S))),
    _f(paths.UPDATE_GRPINFO): op("Refused: only the owner and admins, users of the master, "
                                 "change a group (§6.4.2.13)", auth=SIGNED, query=GROUP_Q,
                                 body=obj(ownerID=S, groupInfo=ref("GroupInfo"))),
    _f(paths.GRPINFO): op("A group's info, to a member's server (§6.4.2.14)", auth=SIGNED,
                          query=("groupID!", "userID!"),
                          answer=dict(groupInfo=ref("GroupInfo"), gset=ref("Gset"))),
    _f(paths.GRPMEMBERS): op("A group's members, to a member's server (§6.4.2.15)",
                             auth=SIGNED, query=("groupID!", "userID!"),
                             answer=dict(members=arr(ref("Member")))),
    _f(paths.GRPCHAT): op("Group history after a messageID (§6.4.2.12)", auth=SIGNED,
                          query=("groupID!", "messageID", "limit"),
                          answer=dict(messages=arr(ref("MessageInfo")), newestMessageID=S)),
    _f(paths.NOTIFY_GRPCHAT): op("A group message from its master, for the listed members "
                                 "(§6.4.2.11)", auth=SIGNED, query=GROUP_Q,
                                 body=obj(("userIDs", "messageInfo"), userIDs=arr(S),
                                          messageInfo=ref("MessageInfo"))),
    _f(paths.NOTIFY_GRPNOTIFY): op("A group changed, from its master (§6.4.2.16)", auth=SIGNED,
                                   query=GROUP_Q,
                                   body=obj(("operType",), operType={"enum": list(range(1, 8))},
                                            operUser=ref("UserInfo"),
                                            groupInfo=ref("GroupInfo"), grpset=ref("Gset"),
                                            users=arr(ref("UserInfo")))),
}

APPLY_FIELDS = dict(serverId=S, serverName=S, serverAddress=S, csr=S, encCsr=S, contactName=S,
                    contactEmail=S, contactMobile=S, serverType=S, area=S, country=S,
                    ownerId=S)
APPLIED = dict(applicationId=S, applyToken=S, status=S)

MANAGEMENT = {
    ("GET", paths.CACERT.full_path): op("The federation CA's certificate (PEM)",
                                        answer=dict(caCert=S)),
    _f(paths.CACERT): op("The federation CA's certificate (PEM)", answer=dict(caCert=S)),
    _f(paths.APPLY): op("Apply to join (no certificate yet; throttled)",
                        body=obj(("serverId", "serverAddress", "csr"), **APPLY_FIELDS),
                        answer=APPLIED),
    _f(paths.APPLY_STATUS): op("An application's state; the certificate once approved",
                               body=obj(("applicationId", "applyToken"), applicationId=S,
                                        applyToken=S),
                               answer=dict(applicationId=S, kind=S, serverId=S, status=S,
                                           reason=S, serverCert=S, encCert=S, caCert=S)),
    _f(paths.MODIFY): op("Change this server's entry or renew its certificate", auth=SIGNED,
                         body=obj(("changes",), changes=obj(**{
                             k: v for k, v in APPLY_FIELDS.items() if k != "serverId"})),
                         answer=APPLIED),
    _f(paths.DEREGISTER): op("Leave the federation", auth=SIGNED,
                             body=obj(("reason",), reason=S), answer=APPLIED),
    _f(paths.GETSERVERCERT): op("A server's certificates (encCert: TLCP's encryption "
                                "certificate, where it has one)",
                                body=obj(("serverId",), serverId=S),
                                answer=dict(serverId=S, serverCert=S, encCert=S)),
    _f(paths.SERVERS): op("Directory changes since lastQueryTime (§6.3.2)", auth=SIGNED,
                          body=obj(lastQueryTime=I, serverIds=arr(S)),
                          answer=dict(servers=arr(ref("ServerEntry")), serverTime=I)),
}

BRIDGE_TOKEN = "bridge"
BRIDGE = {
    ("POST", V1 + "bridge/users"): op(
        "Provision one of the system's users (201 made, 200 there already)",
        auth=BRIDGE_TOKEN,
        body=obj(("phoneNumber", "name"), phoneNumber=S, name=S, verifyType={"enum": [1, 2]}),
        answer=dict(userInfo=ref("UserInfo"), created=B)),
}
"""The bridge's own operation; every operation of the client API (client.json) is called the
same way, with the bridge token and ?user_id=."""

SIGNED_PUSH = {"name": "X-Imfed-Signature", "in": "header", "required": True,
               "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
               "description": "HMAC-SHA256 with [bridge] push_token: over the body of a "
               "transaction, over the path of a lookup"}
BRIDGE_WEBHOOKS = {
    "transactions": {"post": {
        "summary": "POST <[bridge] url>/transactions: the events of the system's users, in "
                   "seq order; sent again with the same txnId until a 2xx",
        "operationId": "transactions", "parameters": [SIGNED_PUSH],
        "requestBody": {"required": True, "content": {"application/json": {"schema": obj(
            ("txnId", "events"), txnId=S, events=arr(obj(
                ("seq", "userID", "type", "data"), seq=I, userID=S,
                type=SCHEMAS["Event"]["properties"]["type"], data=ANY)))}}},
        "responses": {"200": {"description": "taken (or taken before: a repeat is "
                                             "acknowledged and ignored)"}}}},
    "userLookup": {"get": {
        "summary": "GET <[bridge] url>/users/<phone>: does the system have this user?",
        "operationId": "userLookup", "parameters": [SIGNED_PUSH],
        "responses": {
            "200": {"description": "the user", "content": {"application/json": {
                "schema": obj(name=S, verifyType={"enum": [1, 2]})}}},
            "404": {"description": "no such user (remembered for a minute)"}}}},
}

INTERFACES = {
    "client": ("imfed client API", CLIENT, {"code": {"enum": [0]}, "error": S},
               "A node's API for its own users: JSON over HTTP on client_listen, "
               "Authorization: Bearer <token> after login (docs/client-api.md). A bridged "
               "IM system calls the same operations with its bridge token and "
               "?user_id=<the user it acts for> (docs/bridge.md)."),
    "federation": ("imfed interconnection interface", FEDERATION,
                   {"code": {"enum": [0, "0"]}, "error": S},
                   "Node to node, and management to node: mutual SM2 TLS, every request "
                   "signed (Authorization: IMFED-SM2 ...) and every answer signed "
                   "(X-IMFed-Signature), docs/protocol.md §2-3, §5. Each path is also served "
                   "with the v1 prefix (docs/protocol.md §2). A caller that sends "
                   "X-Imfed-Pipeline: in-order gets the same header back: requests it "
                   "pipelines on the connection are handled one at a time in order, and after "
                   "an error answer the connection closes with nothing behind it handled "
                   "(docs/protocol.md §2)."),
    "bridge": ("imfed bridge API", BRIDGE, {"code": {"enum": [0]}, "error": S},
               "For an existing IM system whose users are this node's users "
               "(docs/bridge.md). The system calls every operation of the client API "
               "(client.json) with Authorization: Bearer <[bridge] token> and "
               "?user_id=<the user it acts for>; its own operation is below. imfed calls the "
               "system back (webhooks): transactions of its users' events, and lookups of "
               "users it has not met."),
    "management": ("imfed management API", MANAGEMENT, {"code": {"enum": ["0"]}, "desc": S},
                   "The management server (§6.1, §6.3, docs/protocol.md §4): apply, review "
                   "status, certificates, the directory. Each path is also served with the v1 "
                   "prefix (docs/protocol.md §2)."),
}


def operations(name: str) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every operation described for an interface."""
    return set(INTERFACES[name][1])


def _parameters(path: str, query) -> list[dict]:
    out = [{"name": part[1:-1], "in": "path", "required": True, "schema": S}
           for part in path.split("/") if part.startswith("{")]
    for q in query:
        out.append({"name": q.rstrip("!"), "in": "query", "required": q.endswith("!"),
                    "schema": S})
    return out


def _operation(method: str, path: str, o: dict, ok_fields: dict) -> dict:
    answer = o["raw"]
    if answer:
        content = {answer: {"schema": {"type": "string"} if answer != "application/json"
                            else {"type": "object"}}}
    else:
        content = {"application/json": {"schema": obj(**ok_fields, **o["answer"])}}
    out = {"summary": o["summary"], "operationId": "%s %s" % (method, path),
           "parameters": _parameters(path, o["query"]),
           "responses": {"200": {"description": "done", "content": content},
                         "default": {"description": "a failure, with a fitting HTTP status",
                                     "content": {"application/json": {
                                         "schema": ref("Error")}}}}}
    if o["body"] is not None:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": o["body"]}}}
    elif method == "POST" and path.endswith("/files"):
        out["requestBody"] = {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    if o["auth"] == SESSION:
        out["security"] = [{"session": []}]
    elif o["auth"] == BRIDGE_TOKEN:
        out["security"] = [{"bridgeToken": []}]
    elif o["auth"] == SIGNED:
        out["security"] = [{"sm2Signature": []}]
    return out


def spec(name: str) -> dict:
    title, table, ok_fields, description = INTERFACES[name]
    out_paths: dict = {}
    for (method, path), o in sorted(table.items()):
        out_paths.setdefault(path, {})[method.lower()] = _operation(method, path, o, ok_fields)
    extra = {"webhooks": BRIDGE_WEBHOOKS} if name == "bridge" else {}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__, "description": description},
        "paths": out_paths,
        **extra,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer"},
                "bridgeToken": {"type": "http", "scheme": "bearer",
                                "description": "[bridge] token; the user acted for is "
                                "?user_id="},
                "sm2Signature": {"type": "apiKey", "in": "header", "name": "Authorization",
                                 "description": "IMFED-SM2 signature over the request "
                                 "(docs/protocol.md §3), with mutual SM2 TLS"}}},
    }


def write(folder: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    written = []
    for name in INTERFACES:
        path = os.path.join(folder, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(name))
        written.append(path)
    return written


def render(name: str) -> str:
    return json.dumps(spec(name), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    for written in write(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi"):
        print(written)
