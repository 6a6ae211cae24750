"""Node operator commands: ``imfed node join``, ``imfed user ...``, ``imfed acl ...``.

They work on the node's config and data directory beside the running daemon; changes take
effect there without a restart (the daemon reads users and access rules from the store)."""

from __future__ import annotations

import getpass
import json
import os
import sys
import time

from ..config import ConfigError, load, parse
from ..crypto import pki
from ..storage import is_postgresql, migrate, run_sync, transaction
from ..storage.audit import audit, audit_log
from ..wire.errors import ApiError
from ..wire.fields import SERVER_ID
from ..node.clients.join import JoinError, application_fields, join, renew
from ..node.handlers import accounts
from ..node.handlers import groups as group_rules
from ..node.handlers.accounts import (MIN_PASSWORD, add_all, check_user_fields, existing,
                                      hash_all, import_rows, local_id, refuse)
from ..node.store import acl, directory, group_messages, groups, outbox, retention, unit, users
from ..timers import now_ms

__all__ = ["add_parsers"]


def _node_config(args):
    """The node named on the command line: by its config file, or by its data folder (the
    serverId read from its certificate: the development default's nodes have no config
    file, their folders are imfed-data/node-a and imfed-data/node-b)."""
    if args.config:
        config = load(args.config)
        if config.node is None:
            raise ConfigError("node", "%s has no [node] role" % args.config)
        return config
    if not args.data_dir:
        raise ConfigError("--config", "name the node: --config FILE, or --data-dir DIR of a "
                          "node that has joined")
    cert_file = os.path.join(args.data_dir, "node", "server.pem")
    try:
        server_id = pki.load_pem_certificate(cert_file).subject_cn
    except (OSError, ValueError, pki.PKIError):
        raise ConfigError("--data-dir", "%s holds no node that has joined (no %s); give "
                          "--config FILE" % (args.data_dir, cert_file)) from None
    return parse({"data_dir": args.data_dir,
                  "node": {"server_id": server_id, "listen": "127.0.0.1:0",
                           "management_url": "https://127.0.0.1"}})


def _joined_config(args):
    """For join and renew: the config file, which says where the management server is."""
    if not args.config:
        raise ConfigError("--config", "imfed node join and renew need the node's config file")
    return _node_config(args)


def _user_id(config, value: str) -> str:
    return local_id(value, config.node.server_id)


def _db(config) -> str:
    path = config.node.database
    if not is_postgresql(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    migrate(path, "node")
    return path


def operator() -> str:
    """Who runs the command, for the audit log: the login name, and the person behind sudo."""
    name = getpass.getuser()
    behind = os.environ.get("SUDO_USER")
    return "%s (sudo by %s)" % (name, behind) if behind and behind != name else name


def _audited(config, action: str, subject: str, change, *args, detail=lambda result: {},
             **fixed):
    """``change(work, *args)`` and its entry in the node's audit log, in one transaction (as
    the admin API writes them): both or neither."""
    now, actor = now_ms(), operator()

    @transaction
    def both(work):
        result = change(work, *args)
        audit(work, now, actor, action, subject, "", **fixed, **detail(result))
        return result

    return unit.run_sync(_db(config), both)


def _react(flow) -> None:
    """Run ``flow(reactor)`` to its end; a JoinError or PKIError becomes the command's error."""
    from twisted.internet import defer, task

    out = []

    async def main(reactor):
        try:
            await flow(reactor)
        except (JoinError, pki.PKIError) as e:
            out.append(str(e))

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    if out:
        raise ApiError(out[0])


def cmd_join(args) -> None:
    config = _joined_config(args)
    fields = application_fields(
        config.node, serverName=args.server_name, serverType=args.server_type,
        area=args.area, country=args.country, ownerId=args.owner_id,
        contactName=args.contact_name, contactEmail=args.contact_email,
        contactMobile=args.contact_mobile)
    _react(lambda reactor: join(
        reactor, config.node, args.ca_fingerprint, fields,
        progress=lambda text: print("imfed node join: " + text, flush=True),
        poll_seconds=args.poll, wait_seconds=args.wait, tls_policy=config.tls_policy))


def cmd_renew(args) -> None:
    config = _joined_config(args)
    _react(lambda reactor: renew(
        reactor, config.node, progress=lambda text: print("imfed node renew: " + text,
                                                          flush=True),
        poll_seconds=args.poll, wait_seconds=args.wait, tls_policy=config.tls_policy))


def _password(args) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif args.password:
        password = args.password
    elif not sys.stdin.isatty():
        raise ApiError("no terminal to ask for the password on: give --password or "
                       "--password-stdin")
    else:
        password = getpass.getpass("password: ")
        if password != getpass.getpass("again: "):
            raise ApiError("passwords differ")
    if len(password) < MIN_PASSWORD:
        raise ApiError("a password has at least %d characters" % MIN_PASSWORD)
    return password


def cmd_user_add(args) -> None:
    config = _node_config(args)
    server_id = config.node.server_id
    if "@" in args.phone and not args.phone.endswith("@" + server_id):
        raise ApiError("%s is not a user of %s" % (args.phone, server_id))
    fields = check_user_fields({"phone": args.phone, "name": args.name,
                                "password": _password(args), "verifyType": args.verify_type,
                                "searchable": not args.hidden,
                                "portrait": args.portrait or ""}, server_id)
    user = _audited(config, "user-add", "%s@%s" % (fields["phone"], server_id),
                    accounts.add_account, server_id, fields["phone"], fields["name"],
                    users.hash_password(fields["password"]), now_ms(), fields["verify_type"],
                    fields["searchable"], fields["portrait"])
    print("added %s (%s)" % (user.user_id, user.name))


def cmd_user_import(args) -> None:
    """All the users of a CSV file, or none: every row is checked (and against the users the
    store has) before any is added; the passwords are hashed on every core; one transaction."""
    config = _node_config(args)
    server_id = config.node.server_id
    started = time.monotonic()
    if args.file == "-":
        rows, problems = import_rows(sys.stdin, server_id)
    else:
        with open(args.file, newline="", encoding="utf-8-sig") as f:
            rows, problems = import_rows(f, server_id)
    path = _db(config)
    refuse(problems + run_sync(path, existing, rows, server_id))
    if args.dry_run:
        print("%d users would be imported; nothing written (--dry-run)" % len(rows))
        return
    run_sync(path, transaction(add_all), rows, hash_all(rows), server_id, now_ms(),
             operator(), os.path.basename(args.file))
    took = time.monotonic() - started
    print("imported %d users in %.1f s (%.0f ms a user)"
          % (len(rows), took, 1000 * took / max(1, len(rows))))


def _set_disabled(args, disabled: bool) -> None:
    config = _node_config(args)
    user_id = _user_id(config, args.user_id)
    changed = _audited(config, "user-disable" if disabled else "user-enable", user_id,
                       accounts.disable_account, user_id, disabled, now_ms())
    state = "disabled (sessions ended)" if disabled else "enabled"
    print("%s %s%s" % (user_id, state, "" if changed else ", as it was"))


def cmd_user_disable(args) -> None:
    _set_disabled(args, True)


def cmd_user_enable(args) -> None:
    _set_disabled(args, False)


def cmd_user_list(args) -> None:
    config = _node_config(args)
    found = run_sync(_db(config), users.list_users)
    if args.json:
        print(json.dumps([dict(u.info(), verifyType=u.verify_type, searchable=bool(u.searchable),
                               disabled=bool(u.disabled))
                          for u in found], ensure_ascii=False, indent=2))
        return
    if not found:
        print("no users")
    for u in found:
        print("%-32s %-20s verifyType %d%s%s" % (u.user_id, u.name, u.verify_type,
                                                  "" if u.searchable else "  (hidden)",
                                                  "  (disabled)" if u.disabled else ""))


def cmd_user_del(args) -> None:
    config = _node_config(args)
    user_id = _user_id(config, args.user_id)
    _audited(config, "user-del", user_id, accounts.delete_account, user_id)
    print("deleted %s" % user_id)


def cmd_user_passwd(args) -> None:
    config = _node_config(args)
    user_id = _user_id(config, args.user_id)
    _audited(config, "user-passwd", user_id, accounts.set_account_password, user_id,
             users.hash_password(_password(args)), now_ms())
    print("password of %s changed; its sessions ended" % user_id)


def cmd_group_list(args) -> None:
    config = _node_config(args)

    def listing(cur):
        return [(g, groups.members(cur, g.group_id), group_messages.count(cur, g.group_id))
                for g in groups.live_groups(cur)]

    rows = run_sync(_db(config), listing)
    if args.json:
        print(json.dumps([{"groupInfo": g.info(len(m)), "gset": g.gset(), "master": bool(
            g.master), "messages": n} for g, m, n in rows], ensure_ascii=False, indent=2))
        return
    if not rows:
        print("no groups")
    for g, members, count in rows:
        print("%-40s %-20s %s  %d members here%s, %d messages" % (
            g.group_id, g.name, "master" if g.master else "view  ", len(members),
            "" if g.master else " (ours)", count))


def cmd_group_show(args) -> None:
    config = _node_config(args)

    def show(cur):
        g = groups.get_group(cur, args.group_id)
        if g is None:
            raise ApiError("no group %s here" % args.group_id)
        return g, groups.members(cur, args.group_id)

    g, members = run_sync(_db(config), show)
    print("group %s%s" % (g.group_id, " (dissolved)" if g.dissolved else ""))
    print("  name      %s" % g.name)
    print("  owner     %s" % g.owner_id)
    print("  settings  isAllow %d, isVisible %d" % (g.is_allow, g.is_visible))
    print("  here      %s" % ("master" if g.master else "a view of another server's group"))
    roles = {3: "owner", 2: "admin", 1: "member"}
    for m in members:
        print("  %-7s %s %s" % (roles[m.user_type], m.user_id, m.info.get("name", "")))


def _as_owner(config, group_id: str, action: str, change, **detail) -> None:
    """``change(work, group_id, owner, server_id, now)`` on a group mastered here, acting as
    its owner (the operator's moderation), audited in its transaction; what it announces goes
    out through the daemon's outbox."""

    def run(work):
        g = groups.get_group(work, group_id)
        if g is None or not g.master or g.dissolved:
            raise ApiError("no live group %s mastered here" % group_id)
        owner = users.get_user(work, g.owner_id)
        return change(work, group_id, owner, config.node.server_id, now_ms())

    _audited(config, action, group_id, run, **detail)


def cmd_group_remove(args) -> None:
    config = _node_config(args)
    members = [_user_id(config, u) for u in args.user_ids]

    def remove(work, group_id, owner, server_id, now):
        return group_rules.remove_members(work, group_id, owner, members, server_id, now)

    _as_owner(config, args.group_id, "group-remove", remove, members=members)
    print("removed %s from %s" % (", ".join(members), args.group_id))


def cmd_group_dissolve(args) -> None:
    config = _node_config(args)
    _as_owner(config, args.group_id, "group-dissolve", group_rules.dissolve)
    print("dissolved %s" % args.group_id)


def _directions(value: str) -> tuple:
    return acl.DIRECTIONS if value == "both" else (value,)


def _each_direction(work, value: str, change, *args) -> list:
    """``change(work, direction, *args)`` for each direction ``value`` names."""
    return [change(work, direction, *args) for direction in _directions(value)]


def cmd_queue_show(args) -> None:
    config = _node_config(args)
    now = now_ms()
    rows = run_sync(_db(config), outbox.queue_view, now)
    if not rows:
        print("nothing owed to other servers")
        return
    print("%-20s %6s %10s %8s %10s  %s" % ("destination", "items", "oldest", "attempts",
                                             "next in", "last error"))
    for dest, n, oldest, attempts, due, error in rows:
        print("%-20s %6d %9.0fs %8d %9.0fs  %s" % (dest, n, (now - oldest) / 1000, attempts,
                                                  max(0, due - now) / 1000, error or "-"))


def cmd_queue_retry(args) -> None:
    config = _node_config(args)
    n = _audited(config, "queue-retry", args.server_id, outbox.retry_now, args.server_id,
                 now_ms(), detail=lambda n: {"items": n})
    print("%d item(s) owed to %s due now" % (n, args.server_id))


def cmd_acl_show(args) -> None:
    config = _node_config(args)
    rules = run_sync(_db(config), acl.read)
    for direction in acl.DIRECTIONS:
        mode, white, black = rules[direction]
        print("%-8s %-9s whitelist: %s; blacklist: %s" % (
            "inbound" if direction == "in" else "outbound", mode,
            ", ".join(sorted(white)) or "-", ", ".join(sorted(black)) or "-"))


def cmd_acl_mode(args) -> None:
    config = _node_config(args)
    _audited(config, "acl-mode", args.direction, _each_direction, args.direction, acl.set_mode,
             args.mode, mode=args.mode)
    print("%s: %s" % (args.direction, args.mode))


def cmd_acl_add(args) -> None:
    config = _node_config(args)
    if not SERVER_ID.match(args.server_id):
        raise ApiError("%r is not a serverId" % args.server_id)
    known = run_sync(_db(config), directory.known, args.server_id)
    if not known and not args.force:
        raise ApiError("%s is not in this node's directory (a typo?); --force to add it "
                       "anyway" % args.server_id)
    _audited(config, "acl-add", args.server_id, _each_direction, args.direction, acl.add,
             args.list, args.server_id, direction=args.direction, list=args.list)
    print("%s added to the %s %s" % (args.server_id, args.direction, args.list))


def cmd_acl_remove(args) -> None:
    config = _node_config(args)

    def remove(work):
        if not sum(_each_direction(work, args.direction, acl.remove, args.list,
                                   args.server_id)):
            raise ApiError("%s is not on the %s %s" % (args.server_id, args.direction,
                                                       args.list))

    _audited(config, "acl-remove", args.server_id, remove, direction=args.direction,
             list=args.list)
    print("%s removed from the %s %s" % (args.server_id, args.direction, args.list))


def _purge_counts(purged) -> dict:
    counts = purged.counts()
    del counts["events"]
    return counts


def _purge(config, args, action: str, subject: str, fn, *fn_args) -> None:
    if not args.yes:
        raise ApiError("imfed purge removes %s's data from this node for good; add --yes"
                       % subject)
    purged = _audited(config, action, subject, fn, *fn_args, detail=_purge_counts)
    purged.unlink()
    counts = _purge_counts(purged)
    print("purged %s: %s" % (subject, ", ".join("%d %s" % (n, kind)
                                                for kind, n in counts.items())))


def cmd_purge_user(args) -> None:
    config = _node_config(args)
    user_id = _user_id(config, args.user_id)
    _purge(config, args, "purge-user", user_id, retention.purge_user, user_id)


def cmd_purge_conversation(args) -> None:
    config = _node_config(args)
    a, b = _user_id(config, args.user_a), args.user_b
    if "@" not in b:
        raise ApiError("the other party is a userID (phone@serverId): %r" % b)
    _purge(config, args, "purge-conversation", "%s|%s" % (a, b),
           retention.purge_conversation, a, b)


def cmd_purge_group(args) -> None:
    config = _node_config(args)
    _purge(config, args, "purge-group", args.group_id, retention.purge_group_history,
           args.group_id)


def cmd_node_audit(args) -> None:
    config = _node_config(args)
    rows = run_sync(_db(config), audit_log, args.limit, args.subject)
    if args.json:
        keys = ("seq", "at", "actor", "action", "subject", "reason")
        print(json.dumps([dict(zip(keys, r[:6]), detail=json.loads(r[6])) for r in rows],
                         ensure_ascii=False, indent=2))
        return
    if not rows:
        print("nothing in the audit log")
    for seq, at, actor, action, subject, reason, detail in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at / 1000))
        print("%5d %s  %-16s %-15s %-28s %s" % (seq, when, actor, action, subject,
                                                reason or _short(detail)))


def _short(detail: str, width: int = 100) -> str:
    """An entry's detail in a line (--json has it whole)."""
    if detail == "{}":
        return ""
    return detail if len(detail) <= width else detail[:width - 1] + "…"


def add_parsers(sub) -> None:
    def with_config(parser):
        return parser  # --config / --data-dir: every command has them (imfed/cli/__init__.py)

    node = sub.add_parser("node", help="node role: join a federation")
    ns = node.add_subparsers(dest="command", required=True)
    j = with_config(ns.add_parser("join", help="apply to the management server, wait for "
                                  "approval, install the certificate"))
    j.add_argument("--ca-fingerprint", required=True,
                   help="SM3 fingerprint of the federation CA, from its operator")
    j.add_argument("--contact-name", required=True)
    j.add_argument("--contact-email", required=True)
    j.add_argument("--contact-mobile", required=True)
    j.add_argument("--server-name")
    j.add_argument("--server-type")
    j.add_argument("--area")
    j.add_argument("--country")
    j.add_argument("--owner-id")
    j.add_argument("--poll", type=float, default=5.0, help="seconds between status checks")
    j.add_argument("--wait", type=float, help="give up waiting after this many seconds")
    j.set_defaults(func=cmd_join)
    r = with_config(ns.add_parser("renew", help="a new key and certificate through a signed "
                                  "modify application (a running daemon takes it up "
                                  "within seconds of its installation)"))
    r.add_argument("--poll", type=float, default=5.0, help="seconds between status checks")
    r.add_argument("--wait", type=float, help="give up waiting after this many seconds")
    r.set_defaults(func=cmd_renew)

    a = with_config(ns.add_parser("audit", help="what the node's operators did (user, "
                                  "group, queue and acl commands), newest last"))
    a.add_argument("--limit", type=int, default=100)
    a.add_argument("--subject", help="only entries about this user, group or serverId")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_node_audit)

    user = sub.add_parser("user", help="node role: this server's users")
    us = user.add_subparsers(dest="command", required=True)
    a = with_config(us.add_parser("add", help="add a user <phone>@<serverId>"))
    a.add_argument("phone")
    a.add_argument("--name", required=True)
    a.add_argument("--password", help="or --password-stdin, or asked for")
    a.add_argument("--password-stdin", action="store_true")
    a.add_argument("--verify-type", type=int, choices=(1, 2), default=2,
                   help="1: refuse all friend requests, 2: allow them (default)")
    a.add_argument("--hidden", action="store_true", help="not found by search")
    a.add_argument("--portrait")
    a.set_defaults(func=cmd_user_add)
    a = with_config(us.add_parser("import", help="add the users of a CSV file (header: phone,"
                                  "name,password[,verifyType,searchable,portrait]): all "
                                  "or, if any row is wrong, none"))
    a.add_argument("file", help="the CSV file (UTF-8), or - for standard input")
    a.add_argument("--dry-run", action="store_true", help="check it, add nobody")
    a.set_defaults(func=cmd_user_import)
    a = with_config(us.add_parser("list", help="list users"))
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_user_list)
    for name, func, text in (("disable", cmd_user_disable, "a user may no longer log in "
                              "(sessions ended, not found by search); what they hold stays"),
                             ("enable", cmd_user_enable, "a disabled user may log in again")):
        a = with_config(us.add_parser(name, help=text))
        a.add_argument("user_id")
        a.set_defaults(func=func)
    a = with_config(us.add_parser("del", help="delete a user"))
    a.add_argument("user_id")
    a.set_defaults(func=cmd_user_del)
    a = with_config(us.add_parser("passwd", help="set a user's password"))
    a.add_argument("user_id")
    a.add_argument("--password")
    a.add_argument("--password-stdin", action="store_true")
    a.set_defaults(func=cmd_user_passwd)

    group = sub.add_parser("group", help="node role: the groups on this server")
    gs = group.add_subparsers(dest="command", required=True)
    a = with_config(gs.add_parser("list", help="groups mastered here, then views of others'"))
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_group_list)
    a = with_config(gs.add_parser("show", help="one group and its members"))
    a.add_argument("group_id")
    a.set_defaults(func=cmd_group_show)
    a = with_config(gs.add_parser("remove", help="remove members from a group mastered "
                                  "here, as its owner (announced to every server)"))
    a.add_argument("group_id")
    a.add_argument("user_ids", nargs="+", metavar="USER_ID")
    a.set_defaults(func=cmd_group_remove)
    a = with_config(gs.add_parser("dissolve", help="dissolve a group mastered here, as its "
                                  "owner (announced to every server)"))
    a.add_argument("group_id")
    a.set_defaults(func=cmd_group_dissolve)

    q = sub.add_parser("queue", help="node role: what is owed to other servers; retry now")
    qs = q.add_subparsers(dest="command", required=True)
    a = with_config(qs.add_parser("show", help="per destination: items, oldest, next attempt, "
                                  "last error"))
    a.set_defaults(func=cmd_queue_show)
    a = with_config(qs.add_parser("retry", help="what is owed to SERVER_ID is due now (the "
                                  "running daemon sends it within seconds)"))
    a.add_argument("server_id")
    a.set_defaults(func=cmd_queue_retry)

    purge = sub.add_parser("purge", help="node role: remove a user's or a conversation's data "
                           "for good (docs/operations.md)")
    ps = purge.add_subparsers(dest="command", required=True)
    a = with_config(ps.add_parser("user", help="what a user left here: one-to-one messages, "
                                  "group messages sent, uploads, events, friend requests "
                                  "(the account stays until imfed user del)"))
    a.add_argument("user_id")
    a.add_argument("--yes", action="store_true", help="yes, remove it for good")
    a.set_defaults(func=cmd_purge_user)
    a = with_config(ps.add_parser("conversation", help="a one-to-one conversation's messages "
                                  "and the file grants they made"))
    a.add_argument("user_a", help="a user of this node")
    a.add_argument("user_b", help="the other party (phone@serverId)")
    a.add_argument("--yes", action="store_true", help="yes, remove it for good")
    a.set_defaults(func=cmd_purge_conversation)
    a = with_config(ps.add_parser("group", help="a group's history kept on this node"))
    a.add_argument("group_id")
    a.add_argument("--yes", action="store_true", help="yes, remove it for good")
    a.set_defaults(func=cmd_purge_group)

    rules = sub.add_parser("acl", help="node role: access control over serverIds")
    rs = rules.add_subparsers(dest="command", required=True)
    a = with_config(rs.add_parser("show", help="show modes and lists"))
    a.set_defaults(func=cmd_acl_show)
    a = with_config(rs.add_parser("mode", help="set the mode of a direction"))
    a.add_argument("direction", choices=("in", "out", "both"))
    a.add_argument("mode", choices=acl.MODES)
    a.set_defaults(func=cmd_acl_mode)
    for name, func, text in (("add", cmd_acl_add, "put a server on a list"),
                             ("remove", cmd_acl_remove, "take a server off a list")):
        a = with_config(rs.add_parser(name, help=text))
        a.add_argument("direction", choices=("in", "out", "both"))
        a.add_argument("list", choices=acl.LISTS)
        a.add_argument("server_id")
        if name == "add":
            a.add_argument("--force", action="store_true",
                           help="add a serverId this node's directory does not know (yet)")
        a.set_defaults(func=func)
