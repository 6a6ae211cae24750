"""The configuration file (TOML), validated into attrs objects.

A wrong or missing value stops the start with a ConfigError that names the key.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from urllib.parse import urlsplit

import attrs

from .wire.fields import SERVER_ID

__all__ = ["ConfigError", "Listen", "Limits", "ManagementConfig", "NodeConfig", "Config", "load",
           "parse", "default_config", "https_address", "LogConfig"]


class ConfigError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__("config key %s: %s" % (key, message))
        self.key = key


@attrs.frozen
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return "%s:%d" % (self.host, self.port)


@attrs.frozen
class Limits:
    """What one listener allows a connection before any request is parsed (imfed/listening.py,
    docs/security.md)."""

    max_connections: int = 4096
    max_connections_per_source: int = 512
    # Connections that have not yet sent the first byte of a request (TLS not done yet, or
    # silent): bounded apart, so that silent connections from a few addresses cannot take the
    # room a peer needs; each is closed header_timeout_seconds after it was accepted.
    max_pending_connections: int = 1024
    max_pending_connections_per_source: int = 32
    header_timeout_seconds: float = 20.0
    idle_timeout_seconds: float = 120.0
    min_body_rate: int = 16384


def _pipeline(r) -> int:
    value = r.positive("outbox_pipeline", 8)
    if value > 64:
        raise ConfigError(r.key("outbox_pipeline"), "must be 1 (one call at a time) to 64")
    return value


def _non_negative(r: "_Reader", name: str, default: float) -> float:
    r.used.add(name)
    value = r.table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(r.key(name), "must be 0 (no bound) or a number of seconds")
    return float(value)


def _days(r: "_Reader", name: str) -> float:
    """A retention in days, 0 (the default) meaning for ever."""
    r.used.add(name)
    value = r.table.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(r.key(name), "must be 0 (kept for ever) or a number of days")
    return float(value)


def _count(r: "_Reader", name: str, default: int) -> int:
    value = r.get(name, int, default)
    if value < 0:
        raise ConfigError(r.key(name), "must be 0 (no bound) or a positive integer")
    return value


def _limits(r: "_Reader") -> Limits:
    d = Limits()
    return Limits(
        max_connections=r.positive("max_connections", d.max_connections),
        max_connections_per_source=r.positive("max_connections_per_source",
                                              d.max_connections_per_source),
        max_pending_connections=r.positive("max_pending_connections",
                                           d.max_pending_connections),
        max_pending_connections_per_source=r.positive(
            "max_pending_connections_per_source", d.max_pending_connections_per_source),
        header_timeout_seconds=r.seconds("header_timeout_seconds", d.header_timeout_seconds),
        idle_timeout_seconds=r.seconds("idle_timeout_seconds", d.idle_timeout_seconds),
        min_body_rate=r.positive("min_body_rate", d.min_body_rate))


def https_address(value: str) -> tuple[str, int]:
    """(host, port) of an ``https://host[:port]`` address with nothing after it; ValueError."""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL with a host")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError("must be https://host[:port] with no path, query or user")
    port = parts.port or 443  # urlsplit raises ValueError for a bad port
    return parts.hostname, port


def _section(data: dict, name: str) -> dict | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(name, "must be a table")
    return value


_KINDS = {int: "an integer", str: "a string", bool: "true or false", dict: "a table",
          list: "a list"}
PHONE = re.compile(r"^[0-9]{3,20}$")


class _Reader:
    """Typed reads from one table, each error naming the dotted key; unknown keys refused."""

    def __init__(self, table: dict, prefix: str) -> None:
        self.table, self.prefix = table, prefix
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return self.prefix + name

    def get(self, name: str, kind, default=attrs.NOTHING):
        self.used.add(name)
        if name not in self.table:
            if default is attrs.NOTHING:
                self._misspelt(name)
                raise ConfigError(self.key(name), "is required")
            return default
        value = self.table[name]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(self.key(name), "must be %s" % _KINDS.get(kind, kind.__name__))
        return value

    def _misspelt(self, name: str) -> None:
        """A required key is missing: if an unknown key looks like it, say that one."""
        close = difflib.get_close_matches(name, [k for k in self.table if k not in self.used],
                                          n=1, cutoff=0.75)
        if close:
            raise ConfigError(self.key(close[0]), "is not a known key (did you mean %s?)"
                              % name)

    def positive(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if value <= 0:
            raise ConfigError(self.key(name), "must be a positive integer")
        return value

    def seconds(self, name: str, default: float, unit: str = "seconds") -> float:
        self.used.add(name)
        value = self.table.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(self.key(name), "must be a positive number of %s" % unit)
        return float(value)

    def server_id(self, name: str, default=attrs.NOTHING) -> str:
        value = self.get(name, str, default)
        if not SERVER_ID.match(value):
            raise ConfigError(self.key(name), "must be 1-64 of A-Z a-z 0-9 _ -")
        return value

    def listen(self, name: str, default=attrs.NOTHING) -> Listen:
        value = self.get(name, str, default)
        host, sep, port = value.rpartition(":")
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            port_n = int(port)
        except ValueError:
            raise ConfigError(self.key(name), "must be IP:port, e.g. 127.0.0.1:8443") from None
        if not sep or not 0 <= port_n <= 65535:
            raise ConfigError(self.key(name), "must be IP:port, e.g. 127.0.0.1:8443")
        return Listen(host, port_n)

    def address(self, name: str, default=attrs.NOTHING) -> str:
        value = self.get(name, str, default)
        try:
            https_address(value)
        except ValueError as e:
            raise ConfigError(self.key(name), str(e)) from None
        return value.rstrip("/")

    def database(self, name: str, default_path: str, data_dir: str) -> str:
        """A store: a ``postgresql://`` URL, or a SQLite file (relative to data_dir)."""
        value = self.get(name, str, default_path)
        if value.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(value)
            if not parts.path.strip("/") and "dbname=" not in parts.query:
                raise ConfigError(self.key(name), "must name the database, "
                                  "e.g. postgresql://imfed@db.example/imfed")
            return value
        if "://" in value or not value:
            raise ConfigError(self.key(name), "must be a postgresql:// URL or a SQLite file path")
        return os.path.join(data_dir, os.path.expanduser(value))

    def done(self) -> None:
        extra = sorted(set(self.table) - self.used)
        if extra:
            close = difflib.get_close_matches(extra[0], sorted(self.used), n=1, cutoff=0.75)
            raise ConfigError(self.key(extra[0]), "is not a known key" +
                              (" (did you mean %s?)" % close[0] if close else ""))


@attrs.frozen
class ManagementConfig:
    server_id: str
    listen: Listen
    address: str
    ca_common_name: str
    ca_validity_days: int
    cert_validity_days: int
    max_body: int
    notify_poll_seconds: float
    notify_retry_initial_seconds: float
    notify_retry_max_seconds: float
    access_log: bool
    limits: Limits
    apply_per_source_per_hour: int
    max_pending_applications: int
    database: str = ""
    """The store: a SQLite file's path (default <data_dir>/management.sqlite3) or a
    ``postgresql://`` URL."""


@attrs.frozen
class NodeConfig:
    server_id: str
    listen: Listen
    address: str
    key_file: str
    cert_file: str
    ca_file: str
    management_cert_file: str
    max_body: int
    management_url: str
    management_id: str
    client_listen: Listen
    directory_refresh_seconds: float
    group_sync_seconds: float
    renew_before_days: float
    renew_check_seconds: float
    event_retention_days: float
    housekeeping_seconds: float
    outbox_retry_initial_seconds: float
    outbox_retry_max_seconds: float
    outbox_give_up_seconds: float
    outbox_pipeline: int
    recall_window_seconds: float
    search_timeout_seconds: float
    max_file_bytes: int
    session_seconds: float
    access_log: bool
    limits: Limits
    login_max_failures: int
    login_window_seconds: float
    recall_grace_seconds: float
    database: str = ""
    """The store: a SQLite file's path (default <data_dir>/node.sqlite3) or a
    ``postgresql://`` URL shared by every process of the node (docs/scaling.md)."""
    database_connections: int = 4
    # TLCP's encryption key and certificate (the node obtains them through apply or modify).
    enc_key_file: str = ""
    enc_cert_file: str = ""
    # How long the node goes on trusting the statuses in its directory without the management
    # server confirming them (a directory query answered); past it, other servers' calls are
    # refused (503) and calls to them wait.  0: no bound.
    peer_status_max_age_seconds: float = 21600.0
    # One-to-one messages a user takes in a day from one user who is not a friend, and from
    # all such users together (docs/security.md).
    stranger_messages_per_sender: int = 200
    stranger_messages_per_user: int = 1000
    # What one user may send through the client API in a minute (one-to-one and group
    # messages; uploads), and all users from one address together (0: no bound, the default:
    # behind a reverse proxy every user has its address).  The bridge is not counted.
    sends_per_minute: int = 300
    uploads_per_minute: int = 60
    sends_per_minute_per_address: int = 0
    # Retention (docs/operations.md): history (one-to-one messages and the group history kept
    # here), this node's uploads, and its copies of other servers' files are purged by
    # housekeeping once older than these many days; 0 keeps them for ever.
    message_retention_days: float = 0.0
    file_retention_days: float = 0.0
    file_cache_days: float = 0.0


LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warn", "error", "critical")


@attrs.frozen
class LogConfig:
    """``[log]``: how the daemon writes its log (docs/operations.md)."""
    format: str = "text"
    level: str = "info"
    node_level: str | None = None
    management_level: str | None = None

    written: bool = False
    """Whether the config has a ``[log]`` section: then the daemon writes its own log to
    standard output, even with every key at its default."""

    @property
    def custom(self) -> bool:
        return self.written or self != LogConfig()


def _log(table: dict) -> LogConfig:
    r = _Reader(table, "log.")

    def level(name, default):
        value = r.get(name, str, default)
        if value is not None and value not in LOG_LEVELS:
            raise ConfigError(r.key(name), "must be one of %s" % ", ".join(LOG_LEVELS))
        return value

    fmt = r.get("format", str, "text")
    if fmt not in LOG_FORMATS:
        raise ConfigError(r.key("format"), "must be one of %s" % ", ".join(LOG_FORMATS))
    cfg = LogConfig(fmt, level("level", "info"), level("node", None),
                    level("management", None))
    r.done()
    return cfg


@attrs.frozen
class BridgeConfig:
    """``[bridge]``: an existing IM system that acts for its users through the client API
    (docs/bridge.md)."""
    token: str = attrs.field(repr=False)
    users: str
    """"all", or a regular expression the phone numbers of the system's users match."""
    url: str | None = None
    """Where imfed pushes what happens to the system's users (None: the system polls)."""
    push_token: str | None = attrs.field(default=None, repr=False)
    """The HMAC-SHA256 key of the pushes."""

    def owns(self, phone: str) -> bool:
        return self.users == "all" or re.fullmatch(self.users, phone) is not None


def _bridge(table: dict) -> BridgeConfig:
    r = _Reader(table, "bridge.")
    token = r.get("token", str)
    if len(token) < 24 or not token.isascii() or not token.isprintable() or " " in token:
        raise ConfigError(r.key("token"), "must be 24 or more printable ASCII characters, "
                          "no spaces (e.g. from `openssl rand -hex 32`)")
    users = _users_pattern(r)
    url = _http_url(r, "url", None) if "url" in table else None
    push_token = r.get("push_token", str, None)
    if url is not None and (push_token is None or len(push_token) < 24):
        raise ConfigError(r.key("push_token"), "is required with url: 24 or more characters, "
                          "the key the pushes are signed with")
    r.done()
    return BridgeConfig(token, users, url, push_token)


@attrs.frozen
class XmppConfig:
    """``[xmpp]``: the XMPP gateway (docs/bridge.md): imfed joins an XMPP server as an
    external component (XEP-0114); that server's users are this node's users."""
    component: str
    """The component's domain: users of other servers and groups are JIDs on it."""
    secret: str = attrs.field(repr=False)
    """The component's shared secret (the XMPP server's component_secret)."""
    connect: Listen
    """The XMPP server's component port."""
    domain: str
    """The XMPP server's host whose users are this node's users."""
    users: str
    """"all", "accounts" (only those of ``accounts``), or a regular expression the phone
    numbers of the gateway's users match."""
    accounts: dict
    """{XMPP localpart: phone}: accounts whose localpart is not their phone number."""
    file_url: str
    """The base of the links XMPP users fetch files from (this node's client API, as they
    reach it)."""
    fetch_from: tuple
    """URL prefixes of uploads (XEP-0363) the gateway may fetch for XMPP users' files."""
    reconnect_max_seconds: float = 10.0

    def owns(self, phone: str) -> bool:
        if self.users == "accounts":
            return phone in self.accounts.values()
        return self.users == "all" or re.fullmatch(self.users, phone) is not None


_DOMAIN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                     r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _users_pattern(r, default=attrs.NOTHING, words=("all",)) -> str:
    users = r.get("users", str, default)
    if users not in words:
        try:
            re.compile(users)
        except re.error as e:
            raise ConfigError(r.key("users"), "is not a regular expression: %s" % e) from None
    return users


def _is_http_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _http_url(r, name: str, default=attrs.NOTHING) -> str:
    url = r.get(name, str, default)
    if not _is_http_url(url):
        raise ConfigError(r.key(name), "must be an http:// or https:// URL")
    return url


def _xmpp(table: dict, node: NodeConfig) -> XmppConfig:
    r = _Reader(table, "xmpp.")
    component, domain = r.get("component", str), r.get("domain", str)
    for key, value in (("component", component), ("domain", domain)):
        if not _DOMAIN.match(value):
            raise ConfigError(r.key(key), "must be a domain name, e.g. im.example.com")
    if component == domain:
        raise ConfigError(r.key("component"), "must differ from domain (a subdomain of it, "
                          "e.g. imfed.%s)" % domain)
    secret = r.get("secret", str)
    if len(secret) < 16 or not secret.isprintable():
        raise ConfigError(r.key("secret"), "must be 16 or more printable characters (the "
                          "XMPP server's component_secret)")
    accounts = r.get("accounts", dict, {})
    for local, phone in accounts.items():
        if not isinstance(phone, str) or not PHONE.match(phone):
            raise ConfigError(r.key("accounts") + "." + local, "must be a phone number "
                              "(3-20 digits)")
    default_url = "http://%s:%d" % (node.client_listen.host, node.client_listen.port)
    fetch_from = r.get("fetch_from", list, [])
    for i, prefix in enumerate(fetch_from):
        if not _is_http_url(prefix):
            raise ConfigError("%s[%d]" % (r.key("fetch_from"), i),
                              "must be an http:// or https:// URL prefix")
    cfg = XmppConfig(
        component=component, secret=secret, connect=r.listen("connect", "127.0.0.1:5347"),
        domain=domain, users=_users_pattern(r, "all", ("all", "accounts")),
        accounts=dict(accounts),
        file_url=_http_url(r, "file_url", default_url).rstrip("/"),
        fetch_from=tuple(fetch_from),
        reconnect_max_seconds=r.seconds("reconnect_max_seconds", 10.0))
    r.done()
    return cfg


@attrs.frozen
class Config:
    data_dir: str
    management: ManagementConfig | None
    node: NodeConfig | None
    # Only in the embedded development default: nodes that join the local management role
    # at start, approved automatically (imfed/devdefault.py).
    dev_nodes: tuple = ()
    # [metrics] listen: the operator listener (/health, /metrics), off unless set.
    metrics_listen: Listen | None = None
    # [metrics] hosts: DNS names /health and /metrics answer to besides IPs and localhost.
    metrics_hosts: tuple = ()
    # [metrics] admin_token_file: the admin API's operator token (imfed/adminapi.py); unset,
    # the admin API answers loopback callers alone.
    admin_token_file: str = ""
    log: LogConfig = LogConfig()
    bridge: BridgeConfig | None = None
    xmpp: XmppConfig | None = None
    # SM2 on the reactor thread (0) or on a pool of this many threads (imfed/crypto/signing.py).
    crypto_threads: int = 0
    # [tls] policy: "gm-only" (SM4 suites alone: TLS 1.3 RFC 8998, TLCP) or "gm-preferred"
    # (SM4 first, the AES/ChaCha20 suites of TLS 1.3 for a peer without them); docs/crypto.md.
    tls_policy: str = "gm-only"

    def path(self, *parts: str) -> str:
        return os.path.join(self.data_dir, *parts)


def parse_listen(value: str, name: str) -> Listen:
    """An ``IP:port`` given outside the config file (a command-line option called ``name``)."""
    return _Reader({name: value}, "").listen(name)


def _management(table: dict, data_dir: str) -> ManagementConfig:
    r = _Reader(table, "management.")
    listen = r.listen("listen")
    cfg = ManagementConfig(
        server_id=r.server_id("server_id", "manager"),
        listen=listen,
        address=r.address("address", "https://%s:%d" % (listen.host, listen.port)),
        ca_common_name=r.get("ca_common_name", str, "imfed federation CA"),
        ca_validity_days=r.positive("ca_validity_days", 3650),
        cert_validity_days=r.positive("cert_validity_days", 365),
        max_body=r.positive("max_body", 1 << 20),
        notify_poll_seconds=r.seconds("notify_poll_seconds", 1.0),
        notify_retry_initial_seconds=r.seconds("notify_retry_initial_seconds", 1.0),
        notify_retry_max_seconds=r.seconds("notify_retry_max_seconds", 300.0),
        access_log=r.get("access_log", bool, True),
        limits=_limits(r),
        apply_per_source_per_hour=r.positive("apply_per_source_per_hour", 20),
        max_pending_applications=r.positive("max_pending_applications", 1000),
        database=r.database("database", "management.sqlite3", data_dir),
    )
    r.done()
    return cfg


def _node(table: dict, data_dir: str) -> NodeConfig:
    r = _Reader(table, "node.")
    listen = r.listen("listen")
    folder = os.path.join(data_dir, "node")
    cfg = NodeConfig(
        server_id=r.server_id("server_id"),
        listen=listen,
        address=r.address("address", "https://%s:%d" % (listen.host, listen.port)),
        key_file=r.get("key_file", str, os.path.join(folder, "server.key")),
        cert_file=r.get("cert_file", str, os.path.join(folder, "server.pem")),
        enc_key_file=r.get("enc_key_file", str, os.path.join(folder, "server-enc.key")),
        enc_cert_file=r.get("enc_cert_file", str, os.path.join(folder, "server-enc.pem")),
        ca_file=r.get("ca_file", str, os.path.join(folder, "ca.pem")),
        management_cert_file=r.get("management_cert_file", str,
                                   os.path.join(folder, "management.pem")),
        max_body=r.positive("max_body", 1 << 20),
        management_url=r.address("management_url"),
        management_id=r.server_id("management_id", "manager"),
        client_listen=r.listen("client_listen", "127.0.0.1:%d" % (listen.port + 1000)
                               if listen.port + 1000 <= 65535 else "127.0.0.1:0"),
        directory_refresh_seconds=r.seconds("directory_refresh_seconds", 60.0),
        group_sync_seconds=r.seconds("group_sync_seconds", 300.0),
        renew_before_days=r.seconds("renew_before_days", 30.0, "days"),
        renew_check_seconds=r.seconds("renew_check_seconds", 3600.0),
        event_retention_days=r.seconds("event_retention_days", 30.0, "days"),
        housekeeping_seconds=r.seconds("housekeeping_seconds", 3600.0),
        outbox_retry_initial_seconds=r.seconds("outbox_retry_initial_seconds", 1.0),
        outbox_retry_max_seconds=r.seconds("outbox_retry_max_seconds", 300.0),
        outbox_give_up_seconds=r.seconds("outbox_give_up_seconds", 7 * 86400.0),
        outbox_pipeline=_pipeline(r),
        recall_window_seconds=r.seconds("recall_window_seconds", 120.0),
        search_timeout_seconds=r.seconds("search_timeout_seconds", 5.0),
        max_file_bytes=r.positive("max_file_bytes", 100 << 20),
        session_seconds=r.seconds("session_seconds", 30 * 86400.0),
        access_log=r.get("access_log", bool, True),
        limits=_limits(r),
        login_max_failures=r.positive("login_max_failures", 10),
        login_window_seconds=r.seconds("login_window_seconds", 900.0),
        recall_grace_seconds=r.seconds("recall_grace_seconds", 60.0),
        database=r.database("database", "node.sqlite3", data_dir),
        database_connections=r.positive("database_connections", 4),
        peer_status_max_age_seconds=_non_negative(r, "peer_status_max_age_seconds", 21600.0),
        stranger_messages_per_sender=r.positive("stranger_messages_per_sender", 200),
        stranger_messages_per_user=r.positive("stranger_messages_per_user", 1000),
        sends_per_minute=r.positive("sends_per_minute", 300),
        uploads_per_minute=r.positive("uploads_per_minute", 60),
        sends_per_minute_per_address=_count(r, "sends_per_minute_per_address", 0),
        message_retention_days=_days(r, "message_retention_days"),
        file_retention_days=_days(r, "file_retention_days"),
        file_cache_days=_days(r, "file_cache_days"),
    )
    r.done()
    return cfg


def parse(data: dict, base_dir: str = ".") -> Config:
    top = _Reader(data, "")
    data_dir = top.get("data_dir", str)
    data_dir = os.path.abspath(os.path.join(base_dir, os.path.expanduser(data_dir)))
    crypto_threads = top.get("crypto_threads", int, 0)
    if not 0 <= crypto_threads <= 64:
        raise ConfigError("crypto_threads", "must be 0 (SM2 on the reactor thread) to 64")
    top.used.update({"management", "node", "metrics", "log", "bridge", "xmpp", "tls"})
    top.done()
    management = _section(data, "management")
    node = _section(data, "node")
    if management is None and node is None:
        raise ConfigError("management", "the config names no role: add [management] or [node]")
    metrics = _section(data, "metrics")
    metrics_listen, admin_token_file = None, ""
    metrics_hosts: tuple[str, ...] = ()
    if metrics is not None:
        r = _Reader(metrics, "metrics.")
        metrics_listen = r.listen("listen")
        metrics_hosts = tuple(r.get("hosts", list, []))
        if not all(isinstance(h, str) and h for h in metrics_hosts):
            raise ConfigError(r.key("hosts"), "must be a list of host names")
        admin_token_file = r.get("admin_token_file", str, "")
        r.done()
    node_config = _node(node, data_dir) if node is not None else None
    xmpp = _section(data, "xmpp")
    if xmpp is not None and node_config is None:
        raise ConfigError("xmpp", "the XMPP gateway serves a node: add [node]")
    return Config(
        data_dir=data_dir,
        management=_management(management, data_dir) if management is not None else None,
        node=node_config,
        metrics_listen=metrics_listen,
        metrics_hosts=metrics_hosts,
        admin_token_file=admin_token_file,
        log=attrs.evolve(_log(_section(data, "log") or {}),
                         written=_section(data, "log") is not None),
        bridge=_bridge(_section(data, "bridge")) if _section(data, "bridge") is not None
        else None,
        xmpp=_xmpp(xmpp, node_config) if xmpp is not None else None,
        crypto_threads=crypto_threads,
        tls_policy=_tls_policy(_section(data, "tls") or {}),
    )


def _tls_policy(table: dict) -> str:
    r = _Reader(table, "tls.")
    policy = r.get("policy", str, "gm-only")
    if policy not in ("gm-only", "gm-preferred"):
        raise ConfigError(r.key("policy"), 'must be "gm-only" (SM4 suites alone) or '
                          '"gm-preferred" (SM4 first, AES for a peer without SM4)')
    r.done()
    return policy


def load(path: str) -> Config:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError("--config", "cannot read %s: %s" % (path, e.strerror)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("--config", "%s is not valid TOML: %s" % (path, e)) from None
    # Relative paths in the file are relative to the current directory, as on the command line.
    return parse(data)


DEV_NODES = (("node-a", 9443, 9080), ("node-b", 9444, 9081))


DEV_PORTS = (8443, 9100) + tuple(p for _, f, c in DEV_NODES for p in (f, c))
"""Every port of the development default (management, metrics, the nodes'), before an
offset."""


def default_config(port_offset: int = 0) -> Config:
    """The embedded development default: a small federation in ./imfed-data on loopback, the
    management role on 8443 and two nodes (federation 9443/9444, client API 9080/9081) that
    join it through the real apply/approve flow at start; health and metrics on 9100.
    ``port_offset`` moves every port (a second development federation beside the first)."""
    o = port_offset
    if not 0 <= o <= 65535 - max(DEV_PORTS):
        raise ConfigError("--port-offset", "must be 0 to %d" % (65535 - max(DEV_PORTS)))
    config = parse({"data_dir": "./imfed-data",
                    "management": {"listen": "127.0.0.1:%d" % (8443 + o),
                                   "server_id": "manager"},
                    "metrics": {"listen": "127.0.0.1:%d" % (9100 + o)}})
    nodes = tuple(
        _node({"server_id": server_id, "listen": "127.0.0.1:%d" % (port + o),
               "client_listen": "127.0.0.1:%d" % (client_port + o),
               "management_url": "https://127.0.0.1:%d" % (8443 + o)},
              os.path.join(config.data_dir, server_id))
        for server_id, port, client_port in DEV_NODES)
    return attrs.evolve(config, dev_nodes=nodes)
