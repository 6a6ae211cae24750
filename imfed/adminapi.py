"""The admin HTTP API (``/admin/v1/...`` on the operator listener, docs/operations.md): what
``imfed user``, ``imfed acl``, ``imfed queue``, ``imfed purge`` and ``imfed admin`` do, for
tools that would rather call HTTP than run a command on the host.

Who may call it: with ``[metrics] admin_token_file`` set, a request carrying that token
(``Authorization: Bearer``), from anywhere the listener is reachable; without it, a request
from a loopback address alone.  A request with an ``Origin`` header (a browser page, however
it reached the listener) is refused, and a body must be JSON (or CSV for an import), which a
cross-site form cannot send.  Every change is written with its audit entry in one transaction,
the actor being ``admin-api`` with the caller's address and, if given, ``X-Imfed-Operator``."""

from __future__ import annotations

import hmac
import io
import ipaddress
import json

from klein import Klein
from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThread

from .config import ConfigError
from .management import review
from .management import store as registry
from .node.store import acl, outbox, retention, users
from .node.handlers import accounts
from .node.handlers.accounts import MIN_PASSWORD, check_user_fields, import_users, local_id
from .storage import transaction
from .storage.audit import audit, audit_log
from .web import body_size, endpoint, install_errors, int_arg, query_arg, read_json
from .wire.errors import ApiError, BadRequest, Forbidden, NotFound, Style, TooLarge
from .wire.fields import SERVER_ID
from .timers import now_ms

__all__ = ["AdminApi", "body_limit", "IMPORT_MAX", "BODY_MAX"]

BODY_MAX = 64 << 10
IMPORT_MAX = 16 << 20
PREFIX = "/admin/v1/"


def body_limit(method: bytes, path: bytes) -> int:
    """What the operator listener reads of a request body: the admin API's changes only."""
    path = path.split(b"?")[0]
    if not path.startswith(PREFIX.encode()) or method in (b"GET", b"HEAD"):
        return 0
    return IMPORT_MAX if path.rstrip(b"/").endswith(b"/users/import") else BODY_MAX


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AdminApi:
    app = Klein()
    style = Style.INTERCONNECT
    interface = "admin"
    install_errors(app)

    def __init__(self, roles, token: str | None) -> None:
        """``roles()``: the roles of the process (each with its ``kind``, ``server_id``,
        ``db`` and ``clock``); ``token``: the operator token, or None (loopback alone)."""
        self.roles, self.token = roles, token

    @property
    def server_id(self) -> str:
        roles = self.roles()
        return roles[0].server_id if roles else "-"

    def _role(self, kind: str, request):
        """The process's role of ``kind`` (``?server=ID`` picks one by its serverId where a
        process runs several, as the development default does)."""
        wanted = query_arg(request, "server")
        for role in self.roles():
            if role.kind == kind and wanted in (None, role.server_id):
                return role
        raise NotFound("this process runs no %s role%s" % (
            kind, "" if wanted is None else " " + wanted), "no_such_role")

    def gate(self, method: bytes, path: bytes, request):
        """The listener's question before it reads a body: a caller the API refuses is
        answered before a byte of it is read."""
        if not path.startswith(PREFIX.encode()):
            return None
        try:
            self._operator(request)
        except ApiError as e:
            return succeed(e)
        return None

    def _operator(self, request) -> str:
        """Who calls (for the audit log), or Forbidden."""
        if request.getHeader(b"origin") is not None:
            raise Forbidden("the admin API is not for web pages (an Origin header was sent)",
                            "browser_refused")
        host = request.getClientAddress().host
        if self.token is not None:
            value = (request.getHeader(b"authorization") or b"").decode("latin-1")
            scheme, _, given = value.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.token.encode()):
                raise Forbidden("the admin API needs the operator token "
                                "(Authorization: Bearer, [metrics] admin_token_file)",
                                "admin_token")
        elif not _loopback(host):
            raise Forbidden("the admin API answers loopback callers only unless [metrics] "
                            "admin_token_file is set", "admin_loopback")
        if request.method not in (b"GET", b"HEAD"):
            kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
            if body_size(request) and kind not in (b"application/json", b"text/csv"):
                raise BadRequest("a body is application/json (text/csv for an import)",
                                 "bad_content_type")
        who = (request.getHeader(b"x-imfed-operator") or b"").decode("utf-8", "replace")
        who = who.strip()[:64]
        return "%sadmin-api (%s)" % (who + " via " if who else "", host)

    async def _audited(self, role, actor: str, change, *args, action: str, subject: str,
                       reason: str = "", detail=lambda result: {}):
        """``change(cur, *args)`` and its audit entry, in one transaction."""
        now = now_ms(role.clock)

        @transaction
        def both(cur):
            result = change(cur, *args)
            audit(cur, now, actor, action, subject, reason, **detail(result))
            return result

        return await role.db.runInteraction(both)

    # --- node: users -------------------------------------------------------------------

    @app.route("/users", methods=["GET"])
    @endpoint()
    async def list_users(self, request):
        self._operator(request)
        found = await self._role("node", request).db.runInteraction(users.list_users)
        return {"code": 0, "error": "", "users": [
            dict(u.info(), verifyType=u.verify_type, searchable=bool(u.searchable),
                 disabled=bool(u.disabled)) for u in found]}

    @app.route("/users", methods=["POST"])
    @endpoint()
    async def add_user(self, request):
        actor = self._operator(request)
        role = self._role("node", request)
        body = read_json(request, BODY_MAX)
        fields = check_user_fields(body, role.server_id)
        hashed = await deferToThread(users.hash_password, fields.pop("password"))
        user = await self._audited(
            role, actor, accounts.add_account, role.server_id, fields["phone"], fields["name"],
            hashed, now_ms(role.clock), fields["verify_type"],
            fields["searchable"], fields["portrait"], action="user-add",
            subject="%s@%s" % (fields["phone"], role.server_id))
        request.setResponseCode(201)
        return {"code": 0, "error": "", "userInfo": user.info()}

    @app.route("/users/import", methods=["POST"])
    @endpoint()
    async def import_users(self, request):
        """A CSV file (``imfed user import``'s columns) as the body: every user or none;
        ``?dryRun=1`` checks it only."""
        actor = self._operator(request)
        role = self._role("node", request)
        if body_size(request) > IMPORT_MAX:
            raise TooLarge("an import is at most %d bytes" % IMPORT_MAX)
        request.content.seek(0)
        try:
            text = request.content.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BadRequest("the CSV file is not UTF-8", "bad_csv") from None
        dry = query_arg(request, "dryRun", "0") in ("1", "true")
        count = await import_users(role.db, role.server_id, io.StringIO(text, newline=""),
                                   dry, actor, "admin-api", role.clock)
        return {"code": 0, "error": "", "imported": 0 if dry else count, "checked": count,
                "dryRun": dry}

    async def _user_change(self, request, user_id: str, fn, action: str, *args):
        actor = self._operator(request)
        role = self._role("node", request)
        user_id = local_id(user_id, role.server_id)
        await self._audited(role, actor, fn, user_id, *args, action=action, subject=user_id)
        return user_id

    @app.route("/users/<user_id>/disable", methods=["POST"])
    @endpoint()
    async def disable_user(self, request, user_id):
        return await self._set_disabled(request, user_id, True)

    @app.route("/users/<user_id>/enable", methods=["POST"])
    @endpoint()
    async def enable_user(self, request, user_id):
        return await self._set_disabled(request, user_id, False)

    async def _set_disabled(self, request, user_id: str, disabled: bool) -> dict:
        role = self._role("node", request)
        uid = await self._user_change(request, user_id, accounts.disable_account,
                                      "user-disable" if disabled else "user-enable",
                                      disabled, now_ms(role.clock))
        return {"code": 0, "error": "", "userID": uid, "disabled": disabled}

    @app.route("/users/<user_id>/password", methods=["POST"])
    @endpoint()
    async def reset_password(self, request, user_id):
        """``{"password": ...}``: the new password; every session of the user ends."""
        self._operator(request)
        role = self._role("node", request)
        password = read_json(request, BODY_MAX).get("password")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD:
            raise BadRequest("password is a string of at least %d characters" % MIN_PASSWORD,
                             "bad_password")
        hashed = await deferToThread(users.hash_password, password)
        uid = await self._user_change(request, user_id, accounts.set_account_password,
                                      "user-passwd",
                                      hashed, now_ms(role.clock))
        return {"code": 0, "error": "", "userID": uid}

    @app.route("/users/<user_id>", methods=["DELETE"])
    @endpoint()
    async def delete_user(self, request, user_id):
        uid = await self._user_change(request, user_id, accounts.delete_account, "user-del")
        return {"code": 0, "error": "", "userID": uid}

    # --- node: access control, queue, purge, audit ---------------------------------------

    @app.route("/acl", methods=["GET"])
    @endpoint()
    async def acl_show(self, request):
        self._operator(request)
        rules = await self._role("node", request).db.runInteraction(acl.read)
        return {"code": 0, "error": "", "acl": {
            ("inbound" if d == "in" else "outbound"): {
                "mode": rules[d][0], "whitelist": sorted(rules[d][1]),
                "blacklist": sorted(rules[d][2])} for d in acl.DIRECTIONS}}

    @app.route("/acl/<direction>/mode", methods=["PUT"])
    @endpoint()
    async def acl_mode(self, request, direction):
        actor = self._operator(request)
        role = self._role("node", request)
        directions = _directions(direction)
        mode = read_json(request, BODY_MAX).get("mode")
        if mode not in acl.MODES:
            raise BadRequest("mode is one of %s" % ", ".join(acl.MODES), "bad_mode")

        def each(cur):
            for d in directions:
                acl.set_mode(cur, d, mode)

        await self._audited(role, actor, each, action="acl-mode", subject=direction,
                            detail=lambda _: {"mode": mode})
        return {"code": 0, "error": "", "direction": direction, "mode": mode}

    @app.route("/acl/<direction>/<name>", methods=["POST"])
    @endpoint()
    async def acl_add(self, request, direction, name):
        """``{"serverId": ..., "force": false}``: a server put on a list (one the directory
        does not know needs ``force``)."""
        actor = self._operator(request)
        role = self._role("node", request)
        directions, listed = _directions(direction), _list(name)
        body = read_json(request, BODY_MAX)
        server_id = body.get("serverId")
        if not isinstance(server_id, str) or not SERVER_ID.match(server_id):
            raise BadRequest("serverId is 1-64 of A-Z a-z 0-9 _ -", "bad_serverId")
        if not body.get("force") and role.directory.get(server_id) is None:
            raise NotFound("%s is not in this node's directory (a typo?); \"force\": true to "
                           "add it anyway" % server_id, "unknown_server")

        def each(cur):
            for d in directions:
                acl.add(cur, d, listed, server_id)

        await self._audited(role, actor, each, action="acl-add", subject=server_id,
                            detail=lambda _: {"direction": direction, "list": listed})
        return {"code": 0, "error": "", "serverId": server_id}

    @app.route("/acl/<direction>/<name>/<server_id>", methods=["DELETE"])
    @endpoint()
    async def acl_remove(self, request, direction, name, server_id):
        actor = self._operator(request)
        role = self._role("node", request)
        directions, listed = _directions(direction), _list(name)

        def each(cur):
            removed = sum(acl.remove(cur, d, listed, server_id) for d in directions)
            if not removed:
                raise NotFound("%s is not on the %s %s" % (server_id, direction, listed),
                               "not_listed")

        await self._audited(role, actor, each, action="acl-remove", subject=server_id,
                            detail=lambda _: {"direction": direction, "list": listed})
        return {"code": 0, "error": "", "serverId": server_id}

    @app.route("/queue", methods=["GET"])
    @endpoint()
    async def queue(self, request):
        self._operator(request)
        role = self._role("node", request)
        now = now_ms(role.clock)
        rows = await role.db.runInteraction(outbox.queue_view, now)
        return {"code": 0, "error": "", "queue": [
            {"destination": dest, "items": n, "oldestSeconds": (now - oldest) / 1000,
             "attempts": attempts, "nextInSeconds": max(0, due - now) / 1000,
             "lastError": error} for dest, n, oldest, attempts, due, error in rows]}

    @app.route("/queue/<server_id>/retry", methods=["POST"])
    @endpoint()
    async def queue_retry(self, request, server_id):
        actor = self._operator(request)
        role = self._role("node", request)
        n = await self._audited(role, actor, outbox.retry_now, server_id,
                                now_ms(role.clock), action="queue-retry",
                                subject=server_id, detail=lambda n: {"items": n})
        role.outbox.wake()
        return {"code": 0, "error": "", "serverId": server_id, "items": n}

    @app.route("/purge", methods=["POST"])
    @endpoint()
    async def purge(self, request):
        """``{"user": ID}``, ``{"conversation": [ID, ID]}`` or ``{"group": groupID}``: that
        data removed from this node for good (``imfed purge``)."""
        actor = self._operator(request)
        role = self._role("node", request)
        body = read_json(request, BODY_MAX)
        if len([k for k in ("user", "conversation", "group") if k in body]) != 1:
            raise BadRequest('name one of "user", "conversation" (two userIDs), "group"',
                             "bad_purge")
        if "user" in body:
            user_id = _local(body["user"], role.server_id)
            fn, args, action, subject = retention.purge_user, (user_id,), "purge-user", user_id
        elif "conversation" in body:
            pair = body["conversation"]
            if not (isinstance(pair, list) and len(pair) == 2 and
                    all(isinstance(u, str) and "@" in u for u in pair)):
                raise BadRequest("conversation is two userIDs", "bad_purge")
            fn, args, action = retention.purge_conversation, tuple(pair), "purge-conversation"
            subject = "|".join(pair)
        else:
            if not isinstance(body["group"], str) or "@" not in body["group"]:
                raise BadRequest("group is a groupID", "bad_purge")
            fn, args, action, subject = (retention.purge_group_history, (body["group"],),
                                         "purge-group", body["group"])

        def counts(purged):
            out = purged.counts()
            del out["events"]
            return out

        purged = await self._audited(role, actor, fn, *args, action=action, subject=subject,
                                     detail=counts)
        purged.unlink()
        return {"code": 0, "error": "", "purged": counts(purged)}

    @app.route("/audit", methods=["GET"])
    @endpoint()
    async def audit(self, request):
        """The node's audit log (``?role=management``: the management role's), newest last;
        ``?subject=``, ``?limit=`` (100)."""
        self._operator(request)
        kind = query_arg(request, "role", "node")
        if kind not in ("node", "management"):
            raise BadRequest("role is node or management", "bad_role")
        role = self._role(kind, request)
        rows = await role.db.runInteraction(audit_log, int_arg(request, "limit", 100, 10000),
                                            query_arg(request, "subject"))
        keys = ("seq", "at", "actor", "action", "subject", "reason")
        return {"code": 0, "error": "", "entries": [
            dict(zip(keys, r[:6]), detail=json.loads(r[6])) for r in rows]}

    # --- management: applications and review ----------------------------------------------

    @app.route("/applications", methods=["GET"])
    @endpoint()
    async def applications(self, request):
        """Pending applications (``?all=1``: every one)."""
        self._operator(request)
        role = self._role("management", request)
        apps = await role.db.runInteraction(
            registry.list_applications, pending_only=query_arg(request, "all", "0") != "1")
        return {"code": 0, "error": "", "applications": [a.to_json() for a in apps]}

    @app.route("/applications/<application_id>/<decision>", methods=["POST"])
    @endpoint()
    async def decide(self, request, application_id, decision):
        """``approve`` (``{"days": N, "note": ...}``, both optional) or ``reject``
        (``{"reason": ...}``, required), audited by the management role as ``imfed admin``
        decisions are."""
        actor = self._operator(request)
        role = self._role("management", request)
        body = read_json(request, BODY_MAX) if body_size(request) else {}
        now = now_ms(role.clock)
        if decision == "approve":
            days = body.get("days", role.config.cert_validity_days)
            if isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= 3650:
                raise BadRequest("days is 1-3650", "bad_days")
            note = body.get("note", "")
            if not isinstance(note, str):
                raise BadRequest("note is text", "bad_note")
            app = await role.db.runInteraction(review.approve, application_id, role.ca, actor,
                                               days, now, note)
        elif decision == "reject":
            reason = body.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise BadRequest("a rejection says why: reason", "bad_reason")
            app = await role.db.runInteraction(review.reject, application_id, actor, reason,
                                               now)
        else:
            raise NotFound("approve or reject", "no_such_path")
        return {"code": 0, "error": "", "application": app.to_json()}


def _directions(value: str) -> tuple:
    if value == "both":
        return acl.DIRECTIONS
    if value not in acl.DIRECTIONS:
        raise NotFound("a direction is in, out or both", "bad_direction")
    return (value,)


def _list(value: str) -> str:
    if value not in acl.LISTS:
        raise NotFound("a list is whitelist or blacklist", "bad_list")
    return value


def _local(value, server_id: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest("user is a userID or a phone number", "bad_purge")
    return local_id(value, server_id)


def read_token(path: str | None) -> str | None:
    """The operator token from ``[metrics] admin_token_file`` (None: not set)."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("metrics.admin_token_file", "cannot read %s: %s" % (path, e)) from None
    if len(token) < 16:
        raise ConfigError("metrics.admin_token_file",
                          "%s holds no token of at least 16 characters" % path)
    return token

