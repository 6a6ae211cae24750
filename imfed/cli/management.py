"""``imfed admin``: the management operator's tools, working on the management data directory
(the SQLite store and the CA) beside the running daemon.  Decisions are written with the same
transactions the daemon uses; the daemon's notifier picks up what they owe the nodes."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import sys

import attrs

from ..config import ConfigError, load
from ..crypto import pki
from ..storage import is_postgresql, migrate, run_sync
from ..wire.errors import ApiError
from ..management import review, store
from ..timers import now_ms

__all__ = ["add_parser"]

NODE_RENEW_BEFORE_DAYS = 30
"""A node's default ``renew_before_days`` (imfed/config.py)."""


@attrs.frozen
class Site:
    data_dir: str
    cert_validity_days: int
    database: str = ""

    @property
    def db(self) -> str:
        return self.database or os.path.join(self.data_dir, "management.sqlite3")

    @property
    def ca_dir(self) -> str:
        return os.path.join(self.data_dir, "management", "ca")


def _site(args) -> Site:
    if args.config:
        config = load(args.config)
        if config.management is None:
            raise ConfigError("management", "%s has no [management] role" % args.config)
        return Site(config.data_dir, config.management.cert_validity_days,
                    config.management.database)
    return Site(os.path.abspath(args.data_dir or "imfed-data"), 365)


def _open(args) -> Site:
    """The management data dir named by the command line, its store brought up to date."""
    site = _site(args)
    if not is_postgresql(site.db) and not os.path.exists(site.db):
        raise ConfigError("--data-dir", "no management store at %s" % site.db)
    migrate(site.db, "management")
    return site


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def _print_json(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


def cmd_applications(site: Site, args) -> None:
    apps = run_sync(site.db, store.list_applications, pending_only=not args.all)
    if args.json:
        return _print_json([a.to_json() for a in apps])
    if not apps:
        print("no %sapplications" % ("" if args.all else "pending "))
    for a in apps:
        print("%s  %-10s %-9s %-24s %s" % (a.application_id, a.kind, a.status, a.server_id,
                                           _when(a.submitted_at)))


def cmd_show(site: Site, args) -> None:
    app = run_sync(site.db, store.get_application, args.application_id)
    if app is None:
        raise ApiError("no application %s" % args.application_id)
    if args.json:
        return _print_json(app.to_json())
    print("application %s" % app.application_id)
    print("  kind        %s" % app.kind)
    print("  server      %s" % app.server_id)
    print("  status      %s" % app.status)
    print("  submitted   %s by %s" % (_when(app.submitted_at), app.submitted_by))
    for key, value in sorted(app.data.items()):
        print("  %-11s %s" % (key, value))
    if app.csr_pem:
        req = pki.CertificateRequest.from_pem(app.csr_pem)
        print("  csr         CN %s, SM2 key, self-signature OK" % req.common_name)
    if app.status != "pending":
        print("  decided     %s by %s" % (_when(app.decided_at), app.decided_by))
        if app.reason:
            print("  reason      %s" % app.reason)
    if app.cert_pem:
        cert = pki.Certificate.from_pem(app.cert_pem)
        print("  certificate serial %x, fingerprint %s, until %s"
              % (cert.serial, cert.fingerprint, cert.not_after.isoformat()))


def cmd_approve(site: Site, args) -> None:
    ca = pki.CertificateAuthority.load(site.ca_dir)
    days = args.days or site.cert_validity_days
    app = run_sync(site.db, review.approve, args.application_id, ca, args.operator, days,
                   now_ms(), args.note or "")
    print("approved %s (%s of %s)" % (app.application_id, app.kind, app.server_id))
    if days <= NODE_RENEW_BEFORE_DAYS:
        print("imfed: warning: a %d-day certificate is within a node's default "
              "renew_before_days (%d): the node applies for a new one as soon as it starts"
              % (days, NODE_RENEW_BEFORE_DAYS), file=sys.stderr)
    if app.cert_pem:
        cert = pki.Certificate.from_pem(app.cert_pem)
        print("issued certificate serial %x, fingerprint %s, valid until %s"
              % (cert.serial, cert.fingerprint, cert.not_after.isoformat()))


def cmd_reject(site: Site, args) -> None:
    app = run_sync(site.db, review.reject, args.application_id, args.operator, args.reason,
                   now_ms())
    print("rejected %s (%s of %s): %s" % (app.application_id, app.kind, app.server_id,
                                          app.reason))


def cmd_suspend(site: Site, args) -> None:
    run_sync(site.db, review.set_status, args.server_id, 1, args.operator, args.reason or "",
             now_ms())
    print("suspended %s" % args.server_id)


def cmd_resume(site: Site, args) -> None:
    run_sync(site.db, review.set_status, args.server_id, 0, args.operator, args.reason or "",
             now_ms())
    print("resumed %s" % args.server_id)


_STATUS = {0: "active", 1: "suspended", 2: "deregistered"}


def cmd_servers(site: Site, args) -> None:
    servers = run_sync(site.db, store.list_servers)
    if args.json:
        return _print_json([dict(s.to_wire(), changedAt=s.changed_at) for s in servers])
    if not servers:
        print("no servers")
    for s in servers:
        print("%-24s %-12s %-36s %s" % (s.server_id, _STATUS[s.status], s.server_address,
                                        s.server_name))


def cmd_audit(site: Site, args) -> None:
    rows = run_sync(site.db, store.audit_log, args.limit, args.subject)
    if args.json:
        keys = ("seq", "at", "actor", "action", "subject", "reason", "detail")
        return _print_json([dict(zip(keys, r[:6]), detail=json.loads(r[6])) for r in rows])
    for seq, at, actor, action, subject, reason, detail in rows:
        print("%5d %s  %-22s %-20s %-20s %s" % (seq, _when(at), actor, action, subject,
                                                reason))


def cmd_queue(site: Site, args) -> None:
    rows = run_sync(site.db, store.queued_notifications)
    if not rows:
        print("no notifications owed")
    for target, changed, attempts, next_attempt, error in rows:
        print("%-24s about %-24s attempts %d, next %s %s" % (target, changed, attempts,
                                                              _when(next_attempt), error))


def add_parser(sub) -> None:
    p = sub.add_parser("admin", help="management operator: review, servers, audit log "
                       "(--config FILE, or --data-dir DIR, default ./imfed-data)")
    p.add_argument("--operator", default=getpass.getuser(),
                   help="who decides, for the audit log (default: the login name)")
    ps = p.add_subparsers(dest="command", required=True)

    def command(name, func, help_text):
        c = ps.add_parser(name, help=help_text)
        c.set_defaults(func=lambda args: func(_open(args), args))
        return c

    c = command("applications", cmd_applications, "list pending applications (--all: every one)")
    c.add_argument("--all", action="store_true")
    c.add_argument("--json", action="store_true")
    c = command("show", cmd_show, "show one application")
    c.add_argument("application_id")
    c.add_argument("--json", action="store_true")
    c = command("approve", cmd_approve, "approve an application (issues the certificate)")
    c.add_argument("application_id")
    c.add_argument("--days", type=int, help="certificate validity (default: the config's)")
    c.add_argument("--note", help="why, for the audit log")
    c = command("reject", cmd_reject, "reject an application with a reason")
    c.add_argument("application_id")
    c.add_argument("--reason", required=True)
    c = command("suspend", cmd_suspend, "suspend a server (status 1)")
    c.add_argument("server_id")
    c.add_argument("--reason", required=True)
    c = command("resume", cmd_resume, "resume a suspended server (status 0)")
    c.add_argument("server_id")
    c.add_argument("--reason")
    c = command("servers", cmd_servers, "list registered servers")
    c.add_argument("--json", action="store_true")
    c = command("audit", cmd_audit, "show the audit log, newest last")
    c.add_argument("--limit", type=int, default=100)
    c.add_argument("--subject", help="only entries about this serverId")
    c.add_argument("--json", action="store_true")
    command("queue", cmd_queue, "notifications still owed to nodes")
