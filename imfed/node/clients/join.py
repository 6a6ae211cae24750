"""Joining a federation (§5.3.1 fig. 3, docs/protocol.md §4) as a node: key and CSR, the CA pinned
by a fingerprint the operator was given (never trusted on first use silently), the management
server's certificate, the application, waiting for approval, installing the certificate.

Resumable: the pending application is kept in ``<data_dir>/node/application.json``, so running
``imfed node join`` again after an interruption goes on waiting for the same one.
"""

from __future__ import annotations

import fcntl
import json
import os
from typing import Callable

from twisted.internet.task import deferLater

from ...config import NodeConfig
from ...crypto import pki, sm2, tls
from ...peer import PeerError, bootstrap_call
from ...wire import paths

__all__ = ["JoinError", "join", "application_fields"]


class JoinError(Exception):
    pass


def application_fields(config: NodeConfig, **given) -> dict:
    fields = {"serverId": config.server_id, "serverAddress": config.address}
    fields.update({k: v for k, v in given.items() if v is not None})
    fields.setdefault("serverName", config.server_id)
    return fields


def _key(path: str) -> sm2.PrivateKey:
    if os.path.exists(path):
        with open(path, "rb") as f:
            return sm2.load_private_key_pem(f.read())
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    key = sm2.generate_private_key()
    pki.write_file(path, key.to_pem(), private=True)
    return key


async def _ok(reactor, policy, config: NodeConfig, path: str, body: dict) -> dict:
    try:
        answer = await bootstrap_call(reactor, policy, config.management_url, path, body)
    except PeerError as e:
        raise JoinError("management server unreachable: %s" % e) from None
    if answer.body.get("code") not in ("0", 0):
        raise JoinError("%s refused: %s" % (path.rstrip("/").rsplit("/", 1)[-1],
                                            answer.body.get("desc") or answer.body))
    return answer.body


async def join(reactor, config: NodeConfig, ca_fingerprint: str, fields: dict,
               progress: Callable[[str], None] = lambda text: None,
               poll_seconds: float = 5.0, wait_seconds: float | None = None,
               tls_policy: str = tls.GM_ONLY) -> pki.Certificate:
    """Run the whole flow; answer the installed certificate.  JoinError when refused."""
    pin = ca_fingerprint.strip().lower().replace(":", "")
    key = _key(config.key_file)
    enc_key = _key(config.enc_key_file) if config.enc_key_file else None

    # 1. The CA, pinned.
    if os.path.exists(config.ca_file):
        ca = pki.load_pem_certificate(config.ca_file)
    else:
        body = await _ok(reactor, tls.BootstrapPolicy(policy=tls_policy), config,
                         paths.CACERT.full_path, {})
        ca = pki.Certificate.from_pem(body.get("caCert", ""))
    if ca.fingerprint != pin:
        raise JoinError("the CA certificate's fingerprint is %s, not the %s you were given: "
                        "not joining" % (ca.fingerprint, pin))
    if not os.path.exists(config.ca_file):
        pki.write_file(config.ca_file, ca.pem)
        progress("CA certificate pinned (SM3 %s)" % ca.fingerprint)

    # 2. The management server's certificate, over TLS now verified against the CA.
    policy = tls.BootstrapPolicy(ca, config.ca_file, config.management_id, tls_policy)
    body = await _ok(reactor, policy, config, paths.GETSERVERCERT.full_path,
                     {"serverId": config.management_id})
    management = pki.Certificate.from_pem(body.get("serverCert", ""))
    pki.verify_issued(management, ca, server_id=config.management_id)
    pki.write_file(config.management_cert_file, management.pem)

    # 3. Apply, or resume waiting for the application already made.
    state_file = os.path.join(os.path.dirname(config.key_file), "application.json")
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
        progress("resuming application %s" % state["applicationId"])
    else:
        request = pki.make_csr(key, config.server_id)
        csrs = {"csr": request.pem.decode("ascii")}
        if enc_key is not None:  # TLCP's encryption certificate, issued with the other
            csrs["encCsr"] = pki.make_csr(enc_key, config.server_id).pem.decode("ascii")
        body = await _ok(reactor, policy, config, paths.APPLY.full_path, dict(fields, **csrs))
        state = {"applicationId": body["applicationId"], "applyToken": body["applyToken"]}
        pki.write_file(state_file, json.dumps(state).encode(), private=True)
        progress("applied as %s: application %s, waiting for the operator's review"
                 % (config.server_id, state["applicationId"]))

    # 4. Wait for the decision.
    waited = 0.0
    while True:
        body = await _ok(reactor, policy, config, paths.APPLY_STATUS.full_path, state)
        if body["status"] == "approved":
            break
        if body["status"] == "rejected":
            os.unlink(state_file)
            raise JoinError("application rejected: %s" % body.get("reason", ""))
        if wait_seconds is not None and waited >= wait_seconds:
            raise JoinError("still pending after %.0f s; run join again to keep waiting"
                            % waited)
        progress("pending review (%.0f s)" % waited)
        await deferLater(reactor, poll_seconds, lambda: None)
        waited += poll_seconds

    # 5. Install.
    cert = pki.Certificate.from_pem(body["serverCert"])
    pki.verify_issued(cert, ca, server_id=config.server_id)
    if cert.public_key != key.public_key():
        raise JoinError("the issued certificate is not for this server's key")
    pki.write_file(config.cert_file, cert.pem)
    if enc_key is not None and body.get("encCert"):
        enc = _issued(body["encCert"], ca, config.server_id, pki.ENC, enc_key)
        pki.write_file(config.enc_cert_file, enc.pem)
        progress("encryption certificate %x installed in %s" % (enc.serial,
                                                                config.enc_cert_file))
    os.unlink(state_file)
    progress("approved: certificate %x installed in %s, valid until %s"
             % (cert.serial, config.cert_file, cert.not_after.isoformat()))
    return cert


def _issued(pem: str, ca: pki.Certificate, server_id: str, kind: str,
            key: sm2.PrivateKey) -> pki.Certificate:
    """An issued certificate, checked: ours (CA, serverId, kind) and for ``key``."""
    try:
        cert = pki.Certificate.from_pem(pem)
        pki.verify_issued(cert, ca, server_id=server_id, kind=kind)
    except pki.PKIError as e:
        raise JoinError("the issued %s certificate is refused: %s" % (kind, e)) from None
    if cert.public_key != key.public_key():
        raise JoinError("the issued %s certificate is not for this server's key" % kind)
    return cert


async def renew(reactor, config: NodeConfig, progress: Callable[[str], None] = lambda t: None,
                poll_seconds: float = 5.0, wait_seconds: float | None = None,
                sign: bool = True, tls_policy: str = tls.GM_ONLY) -> pki.Certificate:
    """Certificate renewal (§6.1.2, docs/protocol.md §4 ``modify``): new keys and CSRs for the
    signing certificate and TLCP's encryption one, sent signed with the current identity; once
    approved the new keys and certificates replace the old ones (the old pairs are kept as
    ``*.old``).  ``sign`` False asks for the encryption certificate alone (a node from before
    TLCP obtaining its first).  A running daemon takes them up at its next renewal check
    (imfed/node/services/renewal.py).  Answers the signing certificate in use afterwards."""
    lock = _renewal_lock(config)
    try:
        return await _renew(reactor, config, progress, poll_seconds, wait_seconds, sign,
                            tls_policy)
    finally:
        lock.close()


def _kinds(config: NodeConfig, sign: bool) -> dict[str, tuple[str, str]]:
    """{kind: (key file, certificate file)} of what a renewal replaces."""
    kinds = {pki.SIGN: (config.key_file, config.cert_file)} if sign else {}
    if config.enc_key_file:
        kinds[pki.ENC] = (config.enc_key_file, config.enc_cert_file)
    return kinds


async def _renew(reactor, config: NodeConfig, progress, poll_seconds: float,
                 wait_seconds: float | None, sign: bool, tls_policy: str) -> pki.Certificate:
    from ...crypto.tls import TLSIdentity
    from ...peer import PeerClient

    identity = TLSIdentity.load(config.key_file, config.cert_file, config.ca_file,
                                config.enc_key_file, config.enc_cert_file)
    with open(config.key_file, "rb") as f:
        current_key = sm2.load_private_key_pem(f.read())
    management = pki.load_pem_certificate(config.management_cert_file)

    async def certificate_of(server_id):
        return management if server_id == config.management_id else None

    client = PeerClient(server_id=config.server_id, key=current_key, identity=identity,
                        reactor=reactor, certificate_of=certificate_of, tls_policy=tls_policy)
    state_file = os.path.join(os.path.dirname(config.key_file), "renewal.json")
    try:
        if os.path.exists(state_file):
            with open(state_file) as saved:
                state = json.load(saved)
            kinds = {k: v for k, v in _kinds(config, True).items()
                     if k in state.get("kinds", [pki.SIGN])}
            keys = {k: _key(files[0] + ".new") for k, files in kinds.items()}
            progress("resuming renewal %s" % state["applicationId"])
        else:
            kinds = _kinds(config, sign)
            keys, changes = {}, {}
            for kind, (key_file, _) in kinds.items():
                keys[kind] = sm2.generate_private_key()
                pki.write_file(key_file + ".new", keys[kind].to_pem(), private=True)
                changes["csr" if kind == pki.SIGN else "encCsr"] = \
                    pki.make_csr(keys[kind], config.server_id).pem.decode("ascii")
            answer = await client.call(config.management_id, config.management_url, "POST",
                                       paths.MODIFY.full_path, {"changes": changes})
            if not answer.ok:
                raise JoinError("renewal refused: %s" % answer.body.get("desc"))
            state = {"applicationId": answer.body["applicationId"],
                     "applyToken": answer.body["applyToken"], "kinds": sorted(kinds)}
            pki.write_file(state_file, json.dumps(state).encode(), private=True)
            progress("renewal %s submitted, waiting for the operator's review"
                     % state["applicationId"])
        waited = 0.0
        while True:
            answer = await client.call(config.management_id, config.management_url, "POST",
                                       paths.APPLY_STATUS.full_path,
                                       {"applicationId": state["applicationId"],
                                        "applyToken": state["applyToken"]}, signed=False)
            status = answer.body.get("status")
            if status == "approved":
                break
            if status == "rejected" or not answer.ok:
                os.unlink(state_file)
                for key_file, _ in kinds.values():
                    os.unlink(key_file + ".new")
                raise JoinError("renewal rejected: %s" % (answer.body.get("reason")
                                                          or answer.body.get("desc")))
            if wait_seconds is not None and waited >= wait_seconds:
                raise JoinError("renewal still pending after %.0f s; run renew again to keep "
                                "waiting" % waited)
            progress("pending review (%.0f s)" % waited)
            await deferLater(reactor, poll_seconds, lambda: None)
            waited += poll_seconds
        issued = {kind: _issued(answer.body["serverCert" if kind == pki.SIGN else "encCert"],
                                identity.ca, config.server_id, kind, keys[kind])
                  for kind in kinds}
        _install(kinds, issued, state_file)
    finally:
        await client.close()
    cert = issued.get(pki.SIGN) or identity.certificate
    for kind, got in issued.items():
        progress("renewed: %s certificate %x installed, valid until %s; a running daemon "
                 "takes it up within seconds"
                 % ("signing" if kind == pki.SIGN else "encryption", got.serial,
                    got.not_after.isoformat()))
    return cert


def _renewal_lock(config: NodeConfig):
    """One renewal at a time per node (the daemon's timer, `imfed node renew`): an exclusive
    lock on ``renewal.lock`` beside the key, held until the new pair is installed."""
    path = os.path.join(os.path.dirname(config.key_file), "renewal.lock")
    f = open(path, "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise JoinError("a renewal of this node's certificate is already running (the "
                        "daemon's, or another `imfed node renew`); it installs the "
                        "certificate when approved") from None
    return f


def _install(kinds: dict, issued: dict, state_file: str) -> None:
    """Each new pair in place of the old one (kept as ``*.old``)."""
    for kind, (key_file, cert_file) in kinds.items():
        for path in (key_file, cert_file):
            if os.path.exists(path):
                os.replace(path, path + ".old")
        os.replace(key_file + ".new", key_file)
        pki.write_file(cert_file, issued[kind].pem)
    os.unlink(state_file)
