"""Errors that become the profile's JSON error bodies (docs/protocol.md §2)."""

from __future__ import annotations

import enum

__all__ = ["Style", "ApiError", "BadRequest", "Unauthorized", "Forbidden", "NotFound",
           "Conflict", "TooLarge", "TooMany", "Unavailable",
           "error_body", "ok_body"]


class Style(enum.Enum):
    """Interconnection answers carry an integer code and ``error``; management answers a string
    code and ``desc``."""

    INTERCONNECT = "interconnect"
    MANAGEMENT = "management"


class ApiError(Exception):
    status = 500
    errcode = "internal"

    def __init__(self, message: str, errcode: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if errcode is not None:
            self.errcode = errcode
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status, errcode = 400, "bad_request"


class Unauthorized(ApiError):
    status, errcode = 401, "unauthorized"


class Forbidden(ApiError):
    status, errcode = 403, "forbidden"


class NotFound(ApiError):
    status, errcode = 404, "not_found"


class Conflict(ApiError):
    status, errcode = 409, "conflict"


class TooLarge(ApiError):
    status, errcode = 413, "too_large"


class TooMany(ApiError):
    """429 with Retry-After: the caller has done this too often, and may again after
    ``retry_after`` seconds."""

    status, errcode = 429, "too_many"

    def __init__(self, message: str, retry_after: float, errcode: str | None = None) -> None:
        super().__init__(message, errcode)
        self.retry_after = max(1, int(retry_after + 0.999))

    @property
    def headers(self) -> dict:
        return {b"retry-after": b"%d" % self.retry_after}


class Unavailable(ApiError):
    status, errcode = 503, "unavailable"


def ok_body(style: Style, **fields) -> dict:
    if style is Style.MANAGEMENT:
        return {"code": "0", "desc": "OK", **fields}
    return {"code": 0, "error": "", **fields}


def error_body(style: Style, message: str, errcode: str) -> dict:
    if style is Style.MANAGEMENT:
        return {"code": "1", "desc": message, "errcode": errcode}
    return {"code": 1, "error": message, "errcode": errcode}
