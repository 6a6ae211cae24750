"""The OpenAPI 3.1 descriptions (imfed/openapi.py, docs/openapi/): valid documents, every route
of each interface described and every described operation a route, the files in docs/ the ones
the code makes, and the client API serving its own."""

from __future__ import annotations

import json
import os
import re

import pytest
import pytest_twisted
import treq
from openapi_spec_validator import validate

from conftest import REPO, lone_node
from imfed import openapi
from imfed.management.routes import ManagementApi
from imfed.node.routes.client import V1, ClientRoutes
from imfed.node.routes.client_groups import GroupRoutes
from imfed.node.routes.federation import FederationRoutes


def _rules(app, prefix: str = "") -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", prefix + rule.rule)
            out.add((method, path.rstrip("/") or "/"))
    return out


def routes(name: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every route an interface serves, as OpenAPI spells paths (aliases
    under /sns/v1/ and with a trailing slash left out)."""
    if name == "client":
        return _rules(ClientRoutes.app) | _rules(GroupRoutes.app, V1 + "groups")
    if name == "bridge":
        return {(m, p) for m, p in _rules(ClientRoutes.app) if p.startswith(V1 + "bridge/")}
    app = FederationRoutes.app if name == "federation" else ManagementApi.app
    return {(m, p) for m, p in _rules(app) if not p.startswith("/sns/v1/")}


@pytest.mark.parametrize("name", sorted(openapi.INTERFACES))
def test_every_route_is_described_and_every_description_is_a_route(name):
    served, described = routes(name), openapi.operations(name)
    assert served - described == set(), "routes without a description"
    assert described - served == set(), "descriptions of no route"
    assert len(served) >= (1 if name == "bridge" else 8)


@pytest.mark.parametrize("name", sorted(openapi.INTERFACES))
def test_the_description_is_valid_openapi_3_1(name):
    document = openapi.spec(name)
    assert document["openapi"] == "3.1.0"
    validate(document)


@pytest.mark.parametrize("name", sorted(openapi.INTERFACES))
def test_docs_hold_what_the_code_describes(name):
    """docs/openapi/<name>.json is `python -m imfed.openapi docs/openapi`'s output."""
    with open(os.path.join(REPO, "docs", "openapi", name + ".json"), encoding="utf-8") as f:
        assert f.read() == openapi.render(name), "run: python -m imfed.openapi docs/openapi"


def test_a_broken_table_is_caught():
    """The comparison sees a route missing from the table and a described path not served."""
    served = routes("client")
    described = set(openapi.operations("client"))
    described.discard(("POST", V1 + "messages"))
    described.add(("GET", V1 + "nowhere"))
    assert served - described == {("POST", V1 + "messages")}
    assert described - served == {("GET", V1 + "nowhere")}


@pytest_twisted.ensureDeferred
async def test_the_client_api_serves_its_description(tmp_path):
    async with lone_node(tmp_path) as node:
        response = await treq.get(node.client_url + "openapi.json")
        assert response.code == 200
        document = json.loads(await treq.content(response))
        assert document == openapi.spec("client")
        assert "/api/v1/messages" in document["paths"]
