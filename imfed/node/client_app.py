"""The client API's Klein app and path prefix, shared by the modules that add routes to it:
client_api.py (sessions, users, friends, messages, files, events) and client_groups.py
(groups).  One app, so one error mapping and one resource."""

from __future__ import annotations

from klein import Klein

from ..web import install_errors

__all__ = ["V1", "app"]

V1 = "/api/v1/"

app = Klein()
install_errors(app)
