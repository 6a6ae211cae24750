"""Accounts as operators make them (the admin API and ``imfed user`` alike): a new user's
fields checked, a CSV of users checked whole and then added in one transaction."""

from __future__ import annotations

import os
import re

from ...storage import transaction
from ...storage.audit import audit
from ...wire.errors import BadRequest, Conflict, NotFound
from ...timers import now_ms
from ..store import users

__all__ = ["MIN_PASSWORD", "PHONE", "check_user_fields", "IMPORT_COLUMNS", "import_rows",
           "existing", "refuse", "hash_all", "add_all", "import_users", "local_id",
           "add_account", "delete_account", "disable_account", "set_account_password"]


def local_id(value: str, server_id: str) -> str:
    """A user of this node by its ID or its phone number alone (the CLI and the admin API)."""
    return value if "@" in value else "%s@%s" % (value, server_id)


MIN_PASSWORD = 8


PHONE = re.compile(r"^\+?[0-9]{3,20}$")


def _field_problems(phone, name, password, verify, searchable,
                    portrait) -> list[tuple[str, str]]:
    """(errcode, what is wrong) for each field of a new user that cannot be: the one set of
    rules for a user added alone (admin API, ``imfed user add``) and for a CSV's rows."""
    wrong = []
    if not isinstance(phone, str) or not PHONE.match(phone):
        wrong.append(("bad_phone", "phone is 3-20 digits, with + in front or not"))
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        wrong.append(("bad_name", "name is 1-64 characters"))
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        wrong.append(("bad_password", "a password has at least %d characters" % MIN_PASSWORD))
    if verify not in (1, 2) or isinstance(verify, bool):
        wrong.append(("bad_verifyType",
                      "verifyType is 1 (refuse friend requests) or 2 (allow them)"))
    if not isinstance(searchable, bool):
        wrong.append(("bad_user", "searchable is true or false (1 or 0)"))
    if not isinstance(portrait, str):
        wrong.append(("bad_user", "portrait is text"))
    return wrong


def _local_part(phone, server_id: str):
    if isinstance(phone, str) and phone.endswith("@" + server_id):
        return phone[:-len(server_id) - 1]
    return phone


def check_user_fields(body: dict, server_id: str) -> dict:
    """A new user's fields (the admin API's body; the CLI's options): phone, name, password,
    verifyType, searchable, portrait, checked; BadRequest naming what is wrong."""
    phone = _local_part(body.get("phone"), server_id)
    name, password = body.get("name"), body.get("password")
    verify = body.get("verifyType", 2)
    searchable, portrait = body.get("searchable", True), body.get("portrait", "")
    wrong = _field_problems(phone, name, password, verify, searchable, portrait)
    if wrong:
        errcode, what = wrong[0]
        raise BadRequest("%s: %r" % (what, phone) if errcode == "bad_phone" else what,
                         errcode)
    return {"phone": phone, "name": name.strip(), "password": password,
            "verify_type": verify, "searchable": searchable, "portrait": portrait}


IMPORT_COLUMNS = ("phone", "name", "password", "verifyType", "searchable", "portrait")
_YES, _NO = ("1", "true", "yes"), ("0", "false", "no")


def import_rows(handle, server_id: str) -> tuple[list[dict], list[tuple[int, str]]]:
    """The users of a CSV file (a header row naming its columns: phone, name and password
    required; verifyType, searchable, portrait optional), and what is wrong with it, as
    (line, what): every row is checked, by the rules of a user added alone, before anything
    is written."""
    import csv

    reader = csv.DictReader(handle)
    header = reader.fieldnames or []
    missing = [c for c in ("phone", "name", "password") if c not in header]
    unknown = [c for c in header if c not in IMPORT_COLUMNS]
    if missing or unknown:
        return [], [(1, "header: %s" % "; ".join(
            (["missing %s" % ", ".join(missing)] if missing else []) +
            (["unknown %s" % ", ".join(unknown)] if unknown else [])))]
    rows, problems, seen = [], [], set()
    for row in reader:
        line = reader.line_num
        phone = _local_part((row.get("phone") or "").strip(), server_id)
        name = (row.get("name") or "").strip()
        password = row.get("password") or ""
        verify = (row.get("verifyType") or "2").strip()
        searchable = (row.get("searchable") or "1").strip().lower()
        portrait = (row.get("portrait") or "").strip()
        fields = {"phone": phone, "name": name, "password": password,
                  "verify_type": int(verify) if verify in ("1", "2") else verify,
                  "searchable": searchable in _YES if searchable in _YES + _NO else searchable,
                  "portrait": portrait, "line": line}
        wrong = [what for _, what in _field_problems(
            phone, name, password, fields["verify_type"], fields["searchable"], portrait)]
        if phone in seen and not any(w.startswith("phone") for w in wrong):
            wrong.insert(0, "%s twice in the file" % phone)
        if wrong:
            problems.append((line, "; ".join(wrong)))
        seen.add(phone)
        rows.append(fields)
    return rows, problems


def existing(cur, rows: list[dict], server_id: str) -> list[tuple[int, str]]:
    """The rows naming a user the store has, as problems."""
    have = users.phones(cur)
    return [(r["line"], "%s@%s exists" % (r["phone"], server_id))
            for r in rows if r["phone"] in have]


def refuse(problems: list[tuple[int, str]]) -> None:
    if problems:
        raise BadRequest("nothing imported; %d problem(s):\n  %s" % (len(problems), "\n  ".join(
            "line %d: %s" % problem for problem in sorted(problems))), "bad_csv")


def hash_all(rows: list[dict]) -> list[str]:
    """The rows' passwords hashed on every core (the hash is slow on purpose)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(users.hash_password, [r["password"] for r in rows]))


def add_all(cur, rows: list[dict], hashes: list[str], server_id: str, now: int, actor: str,
             source: str) -> None:
    """Every row added, or (a user that appeared meanwhile) none; with its audit entry."""
    refuse(existing(cur, rows, server_id))
    for row, hashed in zip(rows, hashes):
        users.add_user(cur, server_id, row["phone"], row["name"], hashed, now,
                       verify_type=row["verify_type"], searchable=row["searchable"],
                       portrait=row["portrait"])
    audit(cur, now, actor, "user-import", source, count=len(rows),
          users=[r["phone"] for r in rows])


async def import_users(db, server_id: str, handle, dry_run: bool, actor: str, source: str,
                       clock) -> int:
    """The admin API's import (the daemon's store): the number of users checked and, unless
    ``dry_run``, added; BadRequest listing every problem otherwise."""
    from twisted.internet.threads import deferToThread

    rows, problems = import_rows(handle, server_id)
    refuse(problems + await db.runInteraction(existing, rows, server_id))
    if not dry_run:
        hashes = await deferToThread(hash_all, rows)
        await db.runInteraction(transaction(add_all), rows, hashes, server_id,
                                now_ms(clock), actor, source)
    return len(rows)


# -- one account's changes: the rules checked in the unit of work that writes --

@transaction
def add_account(work, server_id: str, phone: str, name: str, password_hash: str, now_ms: int,
                verify_type: int = 2, searchable: bool = True,
                portrait: str = "") -> users.User:
    """A new user of this server; 400 for a field that cannot be, 409 when the phone (or the
    ID it makes) is taken."""
    if not users.LOCAL_PART.match(phone):
        raise BadRequest("phone must be 1-64 of A-Z a-z 0-9 . _ + -", "bad_phone")
    if not name.strip() or len(name) > 64:
        raise BadRequest("name must be 1-64 characters", "bad_name")
    if verify_type not in (1, 2):
        raise BadRequest("verifyType is 1 (refuse all) or 2 (allow)", "bad_verifyType")
    user_id = "%s@%s" % (phone, server_id)
    if users.taken(work, user_id, phone):
        raise Conflict("user %s exists" % user_id, "user_exists")
    return users.add_user(work, server_id, phone, name, password_hash, now_ms,
                          verify_type=verify_type, searchable=searchable, portrait=portrait)


def _existing_user(work, user_id: str) -> None:
    if users.get_user(work, user_id) is None:
        raise NotFound("no user %s" % user_id, "unknown_user")


@transaction
def delete_account(work, user_id: str) -> None:
    _existing_user(work, user_id)
    users.delete_user(work, user_id)


@transaction
def disable_account(work, user_id: str, disabled: bool, now_ms: int) -> bool:
    """Disabled (no login, every session ended, not found by search) or enabled again;
    whether that changed anything."""
    _existing_user(work, user_id)
    return users.set_disabled(work, user_id, disabled, now_ms)


@transaction
def set_account_password(work, user_id: str, password_hash: str, now_ms: int) -> None:
    """A new password; every session of the user ends."""
    _existing_user(work, user_id)
    users.set_password(work, user_id, password_hash, now_ms)
