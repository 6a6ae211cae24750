"""``imfed check SERVER_ID``: a peer tested the way a federation tester would, each step
reported: this node's directory entry for it, a TLS handshake (our CA, its serverId in the
certificate, the fingerprint the directory has), and a signed round trip (our signature
accepted, its answer signed)."""

from __future__ import annotations

from ..crypto import pki
from ..config import https_address
from ..peer import PeerClient, PeerError
from ..storage import StoreError, run_sync
from ..wire import paths
from ..node.directory import Directory
from ..node.service import _identity

__all__ = ["check"]


class _Store:
    """What the Directory reads at construction, from the node's store file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read_now(self, fn, *args):
        return run_sync(self.path, fn, *args)


async def check(reactor, config, server_id: str, report) -> None:
    """``report(step, ok, detail)`` for each step; stops at the first that fails."""
    n = config.node
    try:
        identity, key = _identity(n)
        management = pki.load_pem_certificate(n.management_cert_file)
    except (OSError, ValueError, pki.PKIError) as e:
        report("this node", False, "no usable key and certificate (joined?): %s" % e)
        return
    report("this node", True, "%s, certificate %x" % (n.server_id, identity.certificate.serial))
    try:
        directory = Directory(db=_Store(n.database),  # type: ignore[arg-type]  # reads only
                              server_id=n.server_id,
                              address=n.address, management_id=n.management_id,
                              management_url=n.management_url, ca=identity.ca,
                              management_cert=management, clock=reactor)
    except StoreError as e:
        report("directory entry", False, str(e))
        return
    peer = directory.get(server_id)
    if peer is None:
        report("directory entry", False, "%s is not in this node's directory (a typo, or the "
               "daemon has not refreshed since it joined)" % server_id)
        return
    if not peer.active:
        report("directory entry", False, "%s is %s" % (server_id, peer.status.name.lower()))
        return
    report("directory entry", True, "%s at %s, certificate %s" % (
        server_id, peer.address, peer.cert.fingerprint[:16]))
    client = PeerClient(server_id=n.server_id, key=key, identity=identity, reactor=reactor,
                        certificate_of=directory.certificate_of, timeout=10.0,
                        tls_policy=config.tls_policy)
    probe = paths.VERIFY_USERS
    query = {"userID": "imfed-check@%s" % server_id}
    try:
        try:
            # Unsigned: the handshake alone (our policy checks the chain and the name).
            answer = await client.call(server_id, peer.address, probe.method,
                                       probe.full_path, query=query, signed=False)
        except PeerError as e:
            report("TLS handshake", False, str(e))
            return
        host, port = https_address(peer.address)
        agreed = client.policy.negotiated_with(host, port)
        report("TLS handshake", True, "mutual TLS with %s's certificate, %s%s (HTTP %d "
               "unsigned)" % (server_id, agreed or "protocol unknown",
                              "" if agreed is None or agreed.gm else
                              " - NOT an SM4 suite: records are not encrypted with GM "
                              "algorithms", answer.status))
        try:
            answer = await client.call(server_id, peer.address, probe.method,
                                       probe.full_path, query=query)
        except PeerError as e:
            report("signed round trip", False, str(e))
            return
        if answer.status == 401:
            report("signed round trip", False, "%s refused our signature: %s" % (
                server_id, answer.body.get("error")))
        elif answer.status == 403:
            report("signed round trip", False, "%s refuses us: %s" % (
                server_id, answer.body.get("error")))
        else:
            report("signed round trip", True, "our signature taken, its answer's checked "
                   "(HTTP %d)" % answer.status)
    finally:
        await client.close()
