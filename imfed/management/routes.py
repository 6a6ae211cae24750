"""The management REST interface (§6.3, PROFILE.md §4)."""

from __future__ import annotations

from klein import Klein

from ..crypto import pki
from ..web import Endpoints, endpoint, install_errors, read_json, sns_route
from ..wire import fields
from ..wire.errors import NotFound, Style, ok_body
from .store import RegistryStore

__all__ = ["ManagementApi"]

M = "restApi/managerserver/"


class ManagementApi(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.MANAGEMENT

    def __init__(self, *, store: RegistryStore, ca: pki.Certificate, own_cert: pki.Certificate,
                 server_id: str, signing_key, verifier, max_body: int) -> None:
        self.store, self.ca, self.own_cert = store, ca, own_cert
        self.server_id, self.signing_key, self.verifier = server_id, signing_key, verifier
        self.max_body = max_body

    @sns_route(app, M + "cacert", methods=("GET", "POST"))
    @endpoint()
    def cacert(self, request):
        return ok_body(self.style, caCert=self.ca.pem.decode("ascii"))

    @sns_route(app, "restApi/getservercert")
    @endpoint()
    async def getservercert(self, request):
        body = read_json(request, self.max_body)
        sid = fields.server_id(body.get("serverId"))
        if sid == self.server_id:
            return ok_body(self.style, serverId=sid, serverCert=self.own_cert.pem.decode("ascii"))
        record = await self.store.get(sid)
        if record is None:
            raise NotFound("no server %s" % sid, "unknown_server")
        if record.status == 2:
            raise NotFound("server %s is deregistered" % sid, "deregistered")
        return ok_body(self.style, serverId=sid, serverCert=record.cert_pem)

    @sns_route(app, M + "servers")
    @endpoint(signed=True)
    async def servers(self, request):
        body = read_json(request, self.max_body)
        ids = fields.string_list(body, "serverIds", fields.server_id)
        last = fields.optional_int(body, "lastQueryTime")
        records, mark = await self.store.changed_since(last, ids)
        return ok_body(self.style, servers=[r.to_wire() for r in records], serverTime=mark)
