"""Field validation at the edge: each check raises BadRequest naming the field (docs/protocol.md
§1-2)."""

from __future__ import annotations

import re
import unicodedata

from .errors import BadRequest

__all__ = ["SERVER_ID", "ascii_digits", "server_id", "optional_int", "string_list", "text",
           "search_query", "MIN_SUBSTRING", "flag", "txn_id", "NOTICE_MAX"]

MIN_SUBSTRING = 2
"""A search shorter than this matches phone numbers and IDs exactly, names not at all."""

SERVER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def ascii_digits(text: str) -> bool:
    """Only 0-9, at least one (``str.isdigit`` also takes "²" and "١", which ``int`` then
    refuses or reads as another number)."""
    return text.isascii() and text.isdigit()


def server_id(value, field: str = "serverId") -> str:
    if not isinstance(value, str) or not SERVER_ID.match(value):
        raise BadRequest("%s must be 1-64 of A-Z a-z 0-9 _ -" % field, "bad_" + field)
    return value


def text(body: dict, field: str, required: bool = True, max_len: int = 256) -> str:
    value = body.get(field)
    if value is None:
        if required:
            raise BadRequest("%s is required" % field, "missing_" + field)
        return ""
    if not isinstance(value, str):
        raise BadRequest("%s must be a string" % field, "bad_" + field)
    if len(value) > max_len:
        raise BadRequest("%s is longer than %d characters" % (field, max_len), "bad_" + field)
    if required and not value.strip():
        raise BadRequest("%s must not be empty" % field, "missing_" + field)
    return value


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                           "\u2066\u2067\u2068\u2069")
"""Marks, embeddings, overrides and isolates that reorder what follows them: in a name,
``a\u202egpj.exe`` reads as ``aexe.jpg``."""


def plain(value: str, field: str, newlines: bool = False) -> str:
    """``value`` unless it holds a control character (tab and, with ``newlines``, line breaks
    aside) or a bidirectional control; BadRequest naming ``field`` otherwise.  For what people
    read as names: user, group and file names, remarks."""
    for c in value:
        if c in _BIDI_CONTROLS:
            raise BadRequest("%s holds a bidirectional control character (U+%04X)"
                             % (field, ord(c)), "bad_" + field)
        if unicodedata.category(c) == "Cc" and c != "\t" and not (newlines and c in "\r\n"):
            raise BadRequest("%s holds a control character (U+%04X)" % (field, ord(c)),
                             "bad_" + field)
    return value


def name(body: dict, field: str, required: bool = True, max_len: int = 64,
         newlines: bool = False) -> str:
    """A text field people read as a name (or a remark, with ``newlines``): ``text``'s rules
    and ``plain``'s."""
    return plain(text(body, field, required, max_len), field, newlines)


def flag(body: dict, field: str) -> bool:
    """A JSON true or false, nothing else."""
    value = body.get(field)
    if not isinstance(value, bool):
        raise BadRequest("%s must be true or false" % field, "bad_" + field)
    return value


def pin_mute(body: dict) -> tuple[bool | None, bool | None]:
    """``pinned`` and ``muted`` of a body, each true, false or absent (None), one at least."""
    out = tuple(None if body.get(f) is None else flag(body, f) for f in ("pinned", "muted"))
    if out == (None, None):
        raise BadRequest("say pinned, muted or both (true or false)", "bad_pinned")
    return out  # type: ignore[return-value]


def optional_int(body: dict, field: str, default: int = 0, minimum: int = 0,
                 maximum: int = 2**63 - 1) -> int:
    """An integer, or a string of digits (docs/protocol.md §2 accepts both)."""
    value = body.get(field, default)
    if isinstance(value, bool):
        raise BadRequest("%s must be an integer" % field, "bad_" + field)
    if isinstance(value, str) and ascii_digits(value) and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or not (minimum <= value <= maximum):
        raise BadRequest("%s must be an integer from %d" % (field, minimum), "bad_" + field)
    return value


def string_list(body: dict, field: str, item, max_items: int = 1000) -> list:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > max_items:
        raise BadRequest("%s must be a list of at most %d items" % (field, max_items),
                         "bad_" + field)
    return [item(v, field) for v in value]


def search_query(value, field: str) -> str:
    """A user search (§6.4.1.3): 1-64 characters once trimmed, none a control, format or
    unassigned character (a NUL once matched every user), at least one letter or digit."""
    if not isinstance(value, str):
        raise BadRequest("%s must be a string" % field, "bad_" + field)
    value = value.strip()
    if not 1 <= len(value) <= 64:
        raise BadRequest("%s must be 1-64 characters" % field, "bad_" + field)
    categories = [unicodedata.category(c) for c in value]
    if any(c[0] == "C" for c in categories):
        raise BadRequest("%s holds a control character" % field, "bad_" + field)
    if not any(c[0] in "LN" for c in categories):
        raise BadRequest("%s must hold a letter or a digit" % field, "bad_" + field)
    return value


_TXN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")


def txn_id(body: dict) -> str | None:
    """The body's ``txnId`` (1-64 of A-Z a-z 0-9 . _ ~ -), or None; 400 bad_txnId."""
    value = body.get("txnId")
    if value is None:
        return None
    if not isinstance(value, str) or not _TXN.match(value):
        raise BadRequest("txnId must be 1-64 of A-Z a-z 0-9 . _ ~ -", "bad_txnId")
    return value


NOTICE_MAX = 2000
"""A group announcement's length, at most (docs/groups.md)."""
