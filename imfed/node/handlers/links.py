"""Links to a user's files that work without a session (docs/bridge.md): what the XMPP
gateway hands its users, whose clients fetch a file by plain URL.  A link names the file, the
user it is for and when it expires, and carries an HMAC-SHA256 over them with the node's link
key (``links.key`` in the node's data folder, made at first start); it gives what the user's
own session would: the file if that user may fetch it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from urllib.parse import quote, urlencode

from ...wire.errors import Forbidden

__all__ = ["FileLinks", "load_key"]


def load_key(path: str) -> bytes:
    """The link key in ``path``, made there (readable by the daemon alone) if absent."""
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    # Made once: processes of one node starting together all end up with the first one's.
    key = secrets.token_bytes(32)
    partial = "%s.%d.new" % (path, os.getpid())
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(partial, path)  # fails if another process made it first
    except FileExistsError:
        pass
    finally:
        os.unlink(partial)
    with open(path, "rb") as f:
        return f.read()


class FileLinks:
    def __init__(self, key: bytes, clock, *, lifetime_seconds: float = 7 * 86400) -> None:
        self.key, self.clock, self.lifetime = key, clock, lifetime_seconds

    def _mac(self, file_id: str, user_id: str, expires: int) -> str:
        text = "%s\n%s\n%d" % (file_id, user_id, expires)
        return hmac.new(self.key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def path(self, file_id: str, user_id: str) -> str:
        """``/api/v1/files/<fileID>?user_id=..&expires=..&link=..``: the file for ``user_id``
        until ``expires`` (Unix seconds)."""
        expires = int(self.clock.seconds() + self.lifetime)
        return "/api/v1/files/%s?%s" % (quote(file_id, safe="@"), urlencode({
            "user_id": user_id, "expires": expires,
            "link": self._mac(file_id, user_id, expires)}))

    def user_for(self, file_id: str, user_id: str | None, expires: str | None,
                 link: str) -> str:
        """The user a link was made for; 403 when it was not made here or has expired."""
        try:
            when = int(expires or "")
        except ValueError:
            when = -1
        # Bytes: compare_digest refuses str with anything but ASCII in it (a TypeError, a 500).
        if not user_id or when < 0 or not hmac.compare_digest(
                self._mac(file_id, user_id, when).encode(),
                link.encode("utf-8", "surrogateescape")):
            raise Forbidden("this link was not made for this file", "bad_link")
        if when < self.clock.seconds():
            raise Forbidden("this link has expired", "link_expired")
        return user_id
