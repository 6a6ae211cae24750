"""The process's metrics (docs/operations.md), in Prometheus' text format through
prometheus-client: one registry per process, each series labelled with the serverId of the
role it belongs to (one process may run the management role and several nodes).

Counters and histograms move where things happen; the gauges that describe the store (queue
depths, applications) are read from it when ``/metrics`` is scraped (imfed/operations.py)."""

from __future__ import annotations

from prometheus_client import (GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR,
                               CollectorRegistry, Counter, Gauge, Histogram)

__all__ = ["REGISTRY", "REQUESTS", "REQUEST_SECONDS", "OUTBOX_DEPTH", "OUTBOX_OLDEST",
           "DELIVERIES", "RETRIES", "SM2_OPERATIONS", "CERTIFICATE_EXPIRY", "STREAM_CLIENTS",
           "LOGIN_FAILURES", "APPLICATIONS", "NOTIFY_DEPTH", "NOTIFICATIONS", "DIRECTORY_OK",
           "BRIDGE_TRANSACTIONS", "BRIDGE_BACKLOG", "XMPP_STANZAS", "XMPP_BACKLOG",
           "XMPP_CONNECTED", "STORE_COMMITS", "STORE_UNITS", "TLS_HANDSHAKES", "TLS_FAILURES",
           "CONNECTIONS_REFUSED", "STREAM_STALLS", "RATE_LIMITED",
           "PURGED"]

REGISTRY = CollectorRegistry(auto_describe=True)
# The process itself, as every Prometheus exporter has it: CPU seconds, resident memory, open
# and allowed file descriptors, start time (process_*), the garbage collector's work
# (python_gc_*) and the interpreter's version (python_info).
for _collector in (PROCESS_COLLECTOR, GC_COLLECTOR, PLATFORM_COLLECTOR):
    REGISTRY.register(_collector)

REQUESTS = Counter(
    "imfed_requests", "Requests answered, by interface, endpoint, HTTP status and calling "
    "server (federation and management interfaces; '-' for a user or an anonymous caller)",
    ["server", "interface", "endpoint", "status", "peer"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "imfed_request_seconds", "Time from a request's route to its answer",
    ["server", "interface", "endpoint"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
OUTBOX_DEPTH = Gauge(
    "imfed_outbox_depth", "Calls queued for another server", ["server", "destination"],
    registry=REGISTRY)
OUTBOX_OLDEST = Gauge(
    "imfed_outbox_oldest_seconds", "Age of the oldest call queued for another server",
    ["server", "destination"], registry=REGISTRY)
DELIVERIES = Counter(
    "imfed_deliveries", "Queued calls that ended, by destination and result (sent, failed)",
    ["server", "destination", "result"], registry=REGISTRY)
RETRIES = Counter(
    "imfed_delivery_retries", "Queued calls attempted and put back for a retry",
    ["server", "destination"], registry=REGISTRY)
STORE_COMMITS = Counter(
    "imfed_store_commits", "Write transactions committed (or tried) by the node's unit of work",
    ["server"], registry=REGISTRY)
STORE_UNITS = Counter(
    "imfed_store_units", "Units of work those transactions carried (group commit: several "
    "per transaction under load)", ["server"], registry=REGISTRY)
SM2_OPERATIONS = Counter(
    "imfed_sm2_operations", "SM2 signatures made and checked", ["operation"],
    registry=REGISTRY)
CERTIFICATE_EXPIRY = Gauge(
    "imfed_certificate_expiry_seconds", "Seconds until the certificate a server presents "
    "expires", ["server"], registry=REGISTRY)
STREAM_CLIENTS = Gauge(
    "imfed_event_stream_clients", "Client event streams (SSE) open now", ["server"],
    registry=REGISTRY)
LOGIN_FAILURES = Counter(
    "imfed_login_failures", "Logins refused (wrong login or password, or throttled)",
    ["server"], registry=REGISTRY)
RATE_LIMITED = Counter(
    "imfed_rate_limited", "Client API calls refused 429 for going past a rate limit",
    ["server", "kind"], registry=REGISTRY)
PURGED = Counter(
    "imfed_purged", "What retention (housekeeping) and imfed purge removed, by kind: "
    "messages, groupMessages, files, cachedFiles, events", ["server", "kind"],
    registry=REGISTRY)
DIRECTORY_OK = Gauge(
    "imfed_directory_refresh_ok", "1 when the last directory query to the management server "
    "succeeded", ["server"], registry=REGISTRY)
APPLICATIONS = Gauge(
    "imfed_applications", "Applications at the management server, by state",
    ["server", "state"], registry=REGISTRY)
NOTIFY_DEPTH = Gauge(
    "imfed_notification_queue_depth", "Change notifications waiting for a node",
    ["server", "node"], registry=REGISTRY)
NOTIFICATIONS = Counter(
    "imfed_notifications", "Change notifications sent, by node and result (sent, retry)",
    ["server", "node", "result"], registry=REGISTRY)
BRIDGE_TRANSACTIONS = Counter(
    "imfed_bridge_transactions", "Transactions pushed to a bridged system, by result (sent, "
    "retry)", ["server", "result"], registry=REGISTRY)
BRIDGE_BACKLOG = Gauge(
    "imfed_bridge_backlog", "Events not yet handed to the bridged system", ["server"],
    registry=REGISTRY)
XMPP_STANZAS = Counter(
    "imfed_xmpp_stanzas", "Stanzas through the XMPP gateway, by direction (in, out)",
    ["server", "direction"], registry=REGISTRY)
XMPP_BACKLOG = Gauge(
    "imfed_xmpp_backlog", "Events not yet confirmed by the XMPP server", ["server"],
    registry=REGISTRY)
XMPP_CONNECTED = Gauge(
    "imfed_xmpp_connected", "1 while the XMPP gateway's stream is up", ["server"],
    registry=REGISTRY)
TLS_HANDSHAKES = Counter(
    "imfed_tls_handshakes", "TLS handshakes completed with other servers, by protocol "
    "(TLSv1.3, TLCPv1.1), suite and role (server: they dialled us; client: we dialled them)",
    ["server", "protocol", "suite", "role"], registry=REGISTRY)
TLS_FAILURES = Counter(
    "imfed_tls_handshake_failures", "TLS handshakes that failed, by role and kind (cipher: no "
    "SM4 suite in common or refused by the policy, version, certificate, eof, other)",
    ["server", "role", "kind"], registry=REGISTRY)
CONNECTIONS_REFUSED = Counter(
    "imfed_connections_refused", "Connections closed at accept or before their first request, "
    "by listener and reason (total, per_source, pending, pending_per_source: a cap was reached; "
    "silent: no request began within header_timeout_seconds)", ["listener", "reason"],
    registry=REGISTRY)
STREAM_STALLS = Counter(
    "imfed_event_stream_stalls", "Client event streams closed because the client read "
    "nothing for a minute while events waited (they stay in the store)", ["server"],
    registry=REGISTRY)
