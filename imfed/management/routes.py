"""The management REST interface (§6.3, docs/protocol.md §4)."""

from __future__ import annotations

from klein import Klein

from ..crypto import pki
from ..web import SIGNED, Endpoints, endpoint, install_errors, read_json, sns_route
from ..wire import paths
from ..wire import fields
from ..throttle import Throttle
from ..wire.records import ServerStatus
from ..wire.errors import Conflict, NotFound, Style, TooMany, Unauthorized, ok_body
from . import review

__all__ = ["ManagementApi"]


class ManagementApi(Endpoints):
    app = Klein()
    install_errors(app)
    style = Style.MANAGEMENT
    interface = "management"

    def __init__(self, *, registrations: review.Registrations, ca: pki.Certificate,
                 own_cert: pki.Certificate,
                 server_id: str, signing_key, verifier, max_body: int,
                 apply_throttle: Throttle, max_pending: int) -> None:
        self.registrations, self.ca, self.own_cert = registrations, ca, own_cert
        self.own_enc_cert: pki.Certificate | None = None  # TLCP's, set by the role
        self.server_id, self.signing_key, self.verifier = server_id, signing_key, verifier
        self.max_body = max_body
        self.apply_throttle, self.max_pending = apply_throttle, max_pending

    @sns_route(app, paths.CACERT, methods=("GET", "POST"))
    @endpoint()
    def cacert(self, request):
        return ok_body(self.style, caCert=self.ca.pem.decode("ascii"))

    @sns_route(app, paths.APPLY)
    @endpoint()
    async def apply(self, request):
        """Anyone may apply (no certificate yet): at most ``apply_per_source_per_hour`` from
        one address, and at most ``max_pending_applications`` waiting in all (429)."""
        source = "source:" + getattr(request.getClientAddress(), "host", "?")
        wait = self.apply_throttle.retry_after(source)
        if wait is not None:
            raise TooMany("too many applications from this address", wait, "throttled")
        body = read_json(request, self.max_body)
        server_id, data, requests = review.parse_apply(body)
        if await self.registrations.pending_count() >= self.max_pending:
            raise TooMany("too many applications are waiting for review", 3600,
                          "review_queue_full")
        self.apply_throttle.hit(source)
        if server_id == self.server_id:
            raise Conflict("serverId %s is the management server's own" % server_id,
                           "server_id_taken")
        return await self._submit("apply", server_id, "applicant:" + server_id, data, requests)

    async def _submit(self, kind: str, server_id: str, by: str, data: dict,
                      requests: review.Requests = review.Requests()) -> dict:
        app, token = review.new_application(kind, server_id, by, self.registrations.now_ms(),
                                            data, requests)
        await self.registrations.submit(app)
        return ok_body(self.style, applicationId=app.application_id, applyToken=token,
                       status="pending")

    @sns_route(app, paths.APPLY_STATUS)
    @endpoint()
    async def apply_status(self, request):
        body = read_json(request, self.max_body)
        application_id = fields.text(body, "applicationId", max_len=64)
        token = fields.text(body, "applyToken", max_len=128)
        app = await self.registrations.application(application_id)
        if app is None:
            raise NotFound("no application %s" % application_id, "unknown_application")
        if not review.token_matches(app, token):
            raise Unauthorized("applyToken does not match", "bad_token")
        answer = ok_body(self.style, applicationId=app.application_id, kind=app.kind,
                         serverId=app.server_id, status=app.status, reason=app.reason)
        if app.status == "approved" and app.cert_pem:
            answer.update(serverCert=app.cert_pem, caCert=self.ca.pem.decode("ascii"))
        if app.status == "approved" and app.enc_cert_pem:
            answer.update(encCert=app.enc_cert_pem, caCert=self.ca.pem.decode("ascii"))
        return answer

    @sns_route(app, paths.MODIFY)
    @endpoint(SIGNED)
    async def modify(self, request, origin):
        body = read_json(request, self.max_body)
        data, requests = review.parse_changes(body, origin)
        return await self._submit("modify", origin, "server:" + origin, data, requests)

    @sns_route(app, paths.DEREGISTER)
    @endpoint(SIGNED)
    async def deregister(self, request, origin):
        body = read_json(request, self.max_body)
        reason = fields.text(body, "reason", max_len=500)
        return await self._submit("deregister", origin, "server:" + origin, {"reason": reason})

    @sns_route(app, paths.GETSERVERCERT)
    @endpoint()
    async def getservercert(self, request):
        body = read_json(request, self.max_body)
        sid = fields.server_id(body.get("serverId"))
        if sid == self.server_id:
            answer = ok_body(self.style, serverId=sid, serverCert=self.own_cert.pem.decode("ascii"))
            if self.own_enc_cert is not None:
                answer["encCert"] = self.own_enc_cert.pem.decode("ascii")
            return answer
        record = await self.registrations.server(sid)
        if record is None:
            raise NotFound("no server %s" % sid, "unknown_server")
        if record.status == ServerStatus.DEREGISTERED:
            raise NotFound("server %s is deregistered" % sid, "deregistered")
        answer = ok_body(self.style, serverId=sid, serverCert=record.cert_pem)
        if record.enc_cert_pem:
            answer["encCert"] = record.enc_cert_pem
        return answer

    @sns_route(app, paths.SERVERS)
    @endpoint(SIGNED)
    async def servers(self, request, origin):
        body = read_json(request, self.max_body)
        ids = fields.string_list(body, "serverIds", fields.server_id)
        last = fields.optional_int(body, "lastQueryTime")
        entries, mark = await self.registrations.changed_since(last, ids)
        return ok_body(self.style, servers=entries, serverTime=mark)
