"""Every management endpoint with bad input: a 4xx JSON answer, and the store unchanged."""

from __future__ import annotations

import json
from io import BytesIO

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.client import Agent, FileBodyProducer

from imfed.crypto import pki, signing, sm2

from conftest import PlainClientPolicy, http, json_of, openssl
from test_management import M, Applicant, client_for


def _p256_csr(folder) -> str:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            str(folder / "p256.key"))
    return openssl("req", "-new", "-key", str(folder / "p256.key"), "-subj", "/CN=node-q"
                   ).stdout.decode()


def _apply_cases(good: dict, other_key, not_sm2: str) -> list:
    def without(field):
        return {k: v for k, v in good.items() if k != field}

    def with_(**kv):
        return dict(good, **kv)

    return [
        (b"{not json", 400, "malformed_json"),
        (b"[]", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (json.dumps(without("serverId")).encode(), 400, "bad_serverId"),
        (json.dumps(with_(serverId="bad id")).encode(), 400, "bad_serverId"),
        (json.dumps(with_(serverId="x" * 65)).encode(), 400, "bad_serverId"),
        (json.dumps(with_(serverId=12)).encode(), 400, "bad_serverId"),
        (json.dumps(without("serverName")).encode(), 400, "missing_serverName"),
        (json.dumps(with_(serverName="")).encode(), 400, "missing_serverName"),
        (json.dumps(with_(serverName=["x"])).encode(), 400, "bad_serverName"),
        (json.dumps(without("contactName")).encode(), 400, "missing_contactName"),
        (json.dumps(without("contactEmail")).encode(), 400, "missing_contactEmail"),
        (json.dumps(with_(contactEmail="not-an-address")).encode(), 400, "bad_contactEmail"),
        (json.dumps(with_(contactEmail="a@b")).encode(), 400, "bad_contactEmail"),
        (json.dumps(without("contactMobile")).encode(), 400, "missing_contactMobile"),
        (json.dumps(with_(contactMobile="call me")).encode(), 400, "bad_contactMobile"),
        (json.dumps(with_(contactMobile=13500001111)).encode(), 400, "bad_contactMobile"),
        (json.dumps(without("serverAddress")).encode(), 400, "missing_serverAddress"),
        (json.dumps(with_(serverAddress="http://im.example.com")).encode(), 400,
         "bad_serverAddress"),
        (json.dumps(with_(serverAddress="https://")).encode(), 400, "bad_serverAddress"),
        (json.dumps(with_(serverAddress="https://im.example.com/api")).encode(), 400,
         "bad_serverAddress"),
        (json.dumps(with_(serverAddress="https://im.example.com:99999")).encode(), 400,
         "bad_serverAddress"),
        (json.dumps(with_(area=5)).encode(), 400, "bad_area"),
        (json.dumps(with_(extra="x")).encode(), 400, "unknown_field"),
        (json.dumps(without("csr")).encode(), 400, "bad_csr"),
        (json.dumps(with_(csr="garbage")).encode(), 400, "bad_csr"),
        (json.dumps(with_(csr=not_sm2)).encode(), 400, "bad_csr"),
        (json.dumps(with_(csr=pki.make_csr(other_key, "node-other").pem.decode())).encode(),
         400, "csr_cn_mismatch"),
        (json.dumps(with_(serverId="manager",
                          csr=pki.make_csr(other_key, "manager").pem.decode())).encode(),
         409, "server_id_taken"),
        (json.dumps(with_(serverName="x" * (2 << 20))).encode(), 413, "too_large"),
    ]


@pytest_twisted.ensureDeferred
async def test_bad_input_changes_nothing(management, tmp_path):
    member = Applicant("node-m", str(tmp_path / "m"), management)
    issued = await member.join()
    pending = Applicant("node-p", str(tmp_path / "p"), management)
    await pending.apply()
    before = management.db_snapshot()

    policy = PlainClientPolicy(None)
    other_key = sm2.generate_private_key()
    tampered = bytearray(pki.make_csr(other_key, "node-q").der)
    tampered[tampered.find(b"node-q")] = ord("m")
    tampered_pem = pki.pem.armor("CERTIFICATE REQUEST", bytes(tampered)).decode()

    fresh = Applicant("node-q", str(tmp_path / "q"), management, key=other_key)
    cases = [(M + "apply", body, status, errcode)
             for body, status, errcode in _apply_cases(fresh.body(), other_key,
                                                       _p256_csr(tmp_path))]
    cases += [
        (M + "apply", json.dumps(fresh.body(csr=tampered_pem)).encode(), 400, "bad_csr"),
        # Taken, and already waiting for review.
        (M + "apply", json.dumps(Applicant("node-m", "", management).body()).encode(), 409,
         "server_id_taken"),
        (M + "apply", json.dumps(Applicant("node-p", "", management).body()).encode(), 409,
         "application_pending"),
        (M + "apply/status", b"{}", 400, "missing_applicationId"),
        (M + "apply/status", json.dumps({"applicationId": 5, "applyToken": "x"}).encode(), 400,
         "bad_applicationId"),
        (M + "apply/status", json.dumps({"applicationId": pending.application_id}).encode(),
         400, "missing_applyToken"),
        (M + "apply/status", json.dumps({"applicationId": pending.application_id,
                                         "applyToken": "0" * 32}).encode(), 401, "bad_token"),
        (M + "apply/status", json.dumps({"applicationId": "nope",
                                         "applyToken": pending.token}).encode(), 404,
         "unknown_application"),
        ("/sns/restApi/getservercert", b'{"serverId": null}', 400, "bad_serverId"),
        ("/sns/restApi/getservercert", b'{"serverId": "node-p"}', 404, "unknown_server"),
        ("/sns/restApi/getservercert", b"x" * ((1 << 20) + 1), 413, "too_large"),
    ]
    # Signed endpoints called without a signature, or wrongly signed.
    for path in ("modify", "deregister", "servers"):
        cases.append((M + path, b'{"changes": {"area": "x"}, "reason": "r"}', 401,
                      "bad_signature"))
    for path, body, status, errcode in cases:
        got, headers, content = await http(policy, "POST", management.url + path, body)
        answer = json_of(content)
        assert (got, answer.get("errcode")) == (status, errcode), (path, body[:80])
        assert answer["code"] != "0" and answer["desc"]
        assert headers.getRawHeaders(b"content-type") == [b"application/json;charset=utf-8"]

    # A JSON answer carries its length up front, no chunked framing (web._json_headers): the
    # client sees a known length (Twisted's client takes the header out of the headers).
    response = await Agent(reactor, contextFactory=policy).request(
        b"POST", (management.url + M + "apply").encode(), None,
        FileBodyProducer(BytesIO(b"{not json")))
    content = await treq.content(response)
    assert response.code == 400 and response.length == len(content) > 0

    # Signed calls from the member over its own mTLS: well signed, bad content.
    client = client_for(issued, management)
    try:
        signed_cases = [
            ("modify", {}, 400, "bad_changes"),
            ("modify", {"changes": {}}, 400, "bad_changes"),
            ("modify", {"changes": "area"}, 400, "bad_changes"),
            ("modify", {"changes": {"serverId": "node-z"}}, 400, "bad_changes"),
            ("modify", {"changes": {"status": 0}}, 400, "bad_changes"),
            ("modify", {"changes": {"contactEmail": "nobody"}}, 400, "bad_contactEmail"),
            ("modify", {"changes": {"serverAddress": "ftp://x"}}, 400, "bad_serverAddress"),
            ("modify", {"changes": {"csr": "junk"}}, 400, "bad_csr"),
            ("modify", {"changes": {"csr": pki.make_csr(other_key, "node-p").pem.decode()}},
             400, "csr_cn_mismatch"),
            ("deregister", {}, 400, "missing_reason"),
            ("deregister", {"reason": 3}, 400, "bad_reason"),
            ("servers", {"lastQueryTime": -1}, 400, "bad_lastQueryTime"),
            ("servers", {"lastQueryTime": "soon"}, 400, "bad_lastQueryTime"),
            ("servers", {"lastQueryTime": True}, 400, "bad_lastQueryTime"),
            ("servers", {"serverIds": "node-m"}, 400, "bad_serverIds"),
            ("servers", {"serverIds": ["ok", "not ok"]}, 400, "bad_serverIds"),
        ]
        for path, body, status, errcode in signed_cases:
            answer = await client.call("manager", management.url, "POST", M + path, body)
            assert (answer.status, answer.body.get("errcode")) == (status, errcode), (path, body)
        # Numeric strings are accepted for times (docs/protocol.md §2).
        answer = await client.call("manager", management.url, "POST", M + "servers",
                                   {"lastQueryTime": "0"})
        assert answer.ok
    finally:
        await client.close()

    # A wrongly signed call over the member's own connection.
    body = b'{"changes": {"area": "x"}}'
    auth, _ = signing.sign_request(other_key, "POST", M + "modify", "node-m", "manager", body,
                                   int(reactor.seconds() * 1000))
    got, _, content = await http(PlainClientPolicy(issued.ca_file, issued.cert_file,
                                                   issued.key_file),
                                 "POST", management.url + M + "modify", body,
                                 {"Authorization": auth})
    assert got == 401 and json_of(content)["errcode"] == "bad_signature"

    assert management.db_snapshot() == before
