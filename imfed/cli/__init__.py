"""The ``imfed`` command: operator tools that work on files and data directories.  This module
parses the command line and holds the PKI commands; management.py (``imfed admin``), node.py
(``imfed node``, ``user``, ``acl``, ``group``, ``queue``, ``purge``), ops.py (backup,
restore, ``db``) and check.py (``imfed check``) the rest."""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from . import ops
from ..config import ConfigError
from ..crypto import pki, sm2
from . import management as admin
from . import node as node_admin
from ..storage import StoreError
from ..wire.errors import ApiError

__all__ = ["main"]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _out(data: bytes, path: str | None, private: bool = False) -> None:
    if path:
        pki.write_file(path, data, private=private)
        print("wrote %s" % path, file=sys.stderr)
    else:
        sys.stdout.write(data.decode("ascii"))


def cmd_init_ca(args) -> None:
    ca = pki.CertificateAuthority.create(args.dir, args.cn, args.days)
    print("CA %s in %s\nfingerprint (SM3) %s" % (args.cn, args.dir, ca.cert.fingerprint))


def cmd_keygen(args) -> None:
    if args.out and os.path.exists(args.out):
        raise SystemExit("imfed: %s exists; not overwriting a key" % args.out)
    _out(sm2.generate_private_key().to_pem(), args.out, private=True)


def cmd_csr(args) -> None:
    key = sm2.load_private_key_pem(_read(args.key))
    _out(pki.make_csr(key, args.server_id).pem, args.out)


def cmd_issue(args) -> None:
    ca = pki.CertificateAuthority.load(args.ca_dir)
    request = pki.CertificateRequest.from_pem(_read(args.csr))
    server_id = args.server_id or request.common_name
    _out(ca.issue(request, server_id, args.host, args.days, kind=args.usage).pem, args.out)


def cmd_show(args) -> None:
    data = _read(args.file)
    if b"CERTIFICATE REQUEST" in data:
        req = pki.CertificateRequest.from_pem(data)
        print("certificate request\n  CN %s\n  self-signature OK (SM2-with-SM3)" % req.common_name)
        return
    if b"PRIVATE KEY" in data:
        key = sm2.load_private_key_pem(data)
        print("SM2 private key\n  public point %s" % key.public_key().point().hex())
        return
    cert = pki.Certificate.from_pem(data)
    print("certificate")
    print("  subject CN   %s" % cert.subject_cn)
    print("  issuer CN    %s" % cert.issuer_cn)
    print("  serial       %x" % cert.serial)
    print("  valid        %s .. %s" % (cert.not_before.isoformat(), cert.not_after.isoformat()))
    print("  CA           %s" % ("yes" if cert.is_ca else "no"))
    print("  altNames     %s" % (", ".join(cert.san) or "-"))
    print("  key usage    %s" % (", ".join(sorted(cert.key_usage)) or "-"))
    print("  ext. usage   %s" % (", ".join(cert.ext_key_usage) or "-"))
    print("  kind         %s" % {pki.SIGN: "signing certificate", pki.ENC: "encryption "
                                 "certificate (TLCP)"}.get(cert.kind, "-"))
    print("  fingerprint  %s (SM3 of DER)" % cert.fingerprint)


def _where(parser, top: bool = False) -> None:
    """--config and --data-dir, the same for every command, before or after its verb."""
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", default=default, metavar="FILE",
                        help="the daemon's config file")
    parser.add_argument("--data-dir", default=default, metavar="DIR",
                        help="a data folder instead of --config: the management role's "
                        "(default ./imfed-data) or a node's (e.g. imfed-data/node-a)")


def _below(parser):
    """Every parser below ``parser``, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield child
                yield from _below(child)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="imfed", description="imfed operator tools. The daemon "
                                "itself runs as `twistd -n imfed --config FILE`.")
    p.add_argument("--version", action="version", version="imfed %s" % __version__)
    _where(p, top=True)
    sub = p.add_subparsers(dest="group", required=True)
    pk = sub.add_parser("pki", help="SM2 keys, CSRs and certificates")
    ps = pk.add_subparsers(dest="command", required=True)

    a = ps.add_parser("init-ca", help="create an SM2 root CA (ca.key, ca.pem) in a folder")
    a.add_argument("--dir", required=True)
    a.add_argument("--cn", default="imfed federation CA")
    a.add_argument("--days", type=int, default=3650)
    a.set_defaults(func=cmd_init_ca)

    a = ps.add_parser("keygen", help="make an SM2 private key (PKCS#8 PEM)")
    a.add_argument("--out", help="file to write (mode 0600); stdout when absent")
    a.set_defaults(func=cmd_keygen)

    a = ps.add_parser("csr", help="make a PKCS#10 request with CN = serverId")
    a.add_argument("--server-id", required=True)
    a.add_argument("--key", required=True)
    a.add_argument("--out")
    a.set_defaults(func=cmd_csr)

    a = ps.add_parser("issue", help="issue a server certificate from a CSR with a CA folder")
    a.add_argument("--ca-dir", required=True)
    a.add_argument("--csr", required=True)
    a.add_argument("--host", required=True, help="DNS name or IP of the server's address")
    a.add_argument("--server-id", help="defaults to the CSR's CN; must match it")
    a.add_argument("--days", type=int, default=365)
    a.add_argument("--usage", choices=(pki.SIGN, pki.ENC), default=pki.SIGN,
                   help="sign: the signing certificate (TLS 1.3, TLCP signatures, requests); "
                   "enc: TLCP's encryption certificate (keyEncipherment, dataEncipherment, "
                   "keyAgreement), for a key of its own")
    a.add_argument("--out")
    a.set_defaults(func=cmd_issue)

    a = ps.add_parser("show", help="describe a certificate, CSR or key file")
    a.add_argument("file")
    a.set_defaults(func=cmd_show)

    admin.add_parser(sub)
    node_admin.add_parsers(sub)
    ops.add_parsers(sub)
    for child in _below(p):
        _where(child)
    return p


def main(argv: list[str] | None = None) -> int:
    """Every command's failure is one line on stderr and exit status 1."""
    args = parser().parse_args(argv)
    os.umask(0o077)  # stores, keys and files the CLI writes: the daemon's user alone
    try:
        args.func(args)
    except ApiError as e:
        print("imfed: %s" % e.message, file=sys.stderr)
        return 1
    except (ConfigError, pki.PKIError, sm2.SM2Error, OSError, StoreError) as e:
        print("imfed: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("imfed: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, or something unforeseen: one line, the rest on request
        if os.environ.get("IMFED_DEBUG"):
            raise
        print("imfed: %s: %s (IMFED_DEBUG=1 shows where)" % (type(e).__name__, e),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
