"""The node's own users as stored: accounts, password hashes, sessions, and the standard's
userInfo.  Who may be added, changed or removed is checked by imfed/node/handlers/accounts.py."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import argon2
import attrs

from ...crypto.sm3 import sm3_hex
from ...storage import like_pattern, transaction
from ...wire.fields import MIN_SUBSTRING

__all__ = ["User", "set_disabled", "hash_password", "check_password", "needs_rehash", "end_session",
           "end_sessions", "add_user", "get_user", "find_user", "list_users", "delete_user",
           "taken", "prune_sessions", "phones", "set_name", "set_portrait", "end_other_sessions",
           "set_password", "search", "new_session", "session_user", "LOCAL_PART"]

LOCAL_PART = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")

# Argon2id at OWASP's current guidance (19 MiB, 2 passes, 1 lane): ~50 ms here, run on a
# thread (argon2-cffi releases the GIL).  Hashes from before (scrypt$...) are still checked,
# and replaced at the next successful login.
_ARGON2 = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY = _ARGON2.hash("imfed: a password nobody has")
"""Checked against when a login names no account, so that it costs the same time."""


def hash_password(password: str) -> str:
    return _ARGON2.hash(password)


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` is the one hashed in ``stored``; with ``stored`` None (no such
    account) the same work is done against a dummy hash and the answer is False."""
    if stored is None:
        _verify_argon2(password, _DUMMY)
        return False
    if stored.startswith("scrypt$"):
        return _check_scrypt(password, stored)
    return _verify_argon2(password, stored)


def needs_rehash(stored: str) -> bool:
    return stored.startswith("scrypt$") or _ARGON2.check_needs_rehash(stored)


def _verify_argon2(password: str, stored: str) -> bool:
    try:
        return _ARGON2.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def _check_scrypt(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@attrs.frozen
class User:
    user_id: str
    phone: str
    name: str
    portrait: str
    password_hash: str = attrs.field(repr=False)
    verify_type: int
    searchable: int
    update_time: int
    accept_strangers: int = 1
    disabled: int = 0

    def info(self, remark: str = "") -> dict:
        """The standard's userInfo (§6.4.1.1), plus updateTime (docs/protocol.md §5)."""
        return {"phoneNumber": self.phone, "remark": remark, "name": self.name,
                "portrait": self.portrait, "userID": self.user_id,
                "updateTime": self.update_time}


_COLUMNS = ("user_id, phone, name, portrait, password_hash, verify_type, searchable, "
            "update_time, accept_strangers, disabled")


def taken(cur, user_id: str, phone: str) -> bool:
    """Whether a user has that ID or that phone."""
    cur.execute("SELECT 1 FROM users WHERE user_id = ? OR phone = ?", (user_id, phone))
    return cur.fetchone() is not None


@transaction
def add_user(cur, server_id: str, phone: str, name: str, password_hash: str, now_ms: int,
             verify_type: int = 2, searchable: bool = True, portrait: str = "") -> User:
    """A new user (the caller checked its fields and that the phone is free:
    imfed/node/handlers/accounts.py)."""
    user = User("%s@%s" % (phone, server_id), phone, name, portrait, password_hash,
                verify_type, int(bool(searchable)), now_ms)
    cur.execute("INSERT INTO users (%s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" % _COLUMNS,
                attrs.astuple(user))
    return user


def get_user(cur, user_id: str) -> User | None:
    cur.execute("SELECT %s FROM users WHERE user_id = ?" % _COLUMNS, (user_id,))
    row = cur.fetchone()
    return User(*row) if row else None


def find_user(cur, login: str) -> User | None:
    """By user ID or by phone."""
    cur.execute("SELECT %s FROM users WHERE user_id = ? OR phone = ?" % _COLUMNS, (login, login))
    row = cur.fetchone()
    return User(*row) if row else None


def list_users(cur) -> list[User]:
    cur.execute("SELECT %s FROM users ORDER BY user_id" % _COLUMNS)
    return [User(*r) for r in cur.fetchall()]


@transaction
def delete_user(cur, user_id: str) -> bool:
    """False: there was no such user."""
    cur.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
    return cur.rowcount == 1


@transaction
def set_disabled(cur, user_id: str, disabled: bool, now_ms: int) -> bool:
    """Disable a user (no login, every session ended, not found by search) or enable them
    again; whether that changed anything."""
    cur.execute("UPDATE users SET disabled = ?, update_time = ? WHERE user_id = ? AND "
                "disabled <> ?", (int(disabled), now_ms, user_id, int(disabled)))
    changed = cur.rowcount == 1
    if disabled:
        cur.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    return changed


@transaction
def set_password(cur, user_id: str, password_hash: str, now_ms: int,
                 keep_sessions: bool = False) -> bool:
    """A new password ends every session (unless ``keep_sessions``: the same password
    rehashed at a stronger cost).  False: there was no such user."""
    cur.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))
    if cur.rowcount != 1:
        return False
    if not keep_sessions:
        cur.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    return True


def search(cur, query: str, limit: int = 50) -> list[User]:
    """Searchable users whose name contains ``query`` or whose phone or ID is ``query``
    (§6.4.1.3: names and phone numbers)."""
    # A one-character query would list half the users by name: it matches exactly only.
    like = like_pattern(query) if len(query) >= MIN_SUBSTRING else ""
    cur.execute("SELECT %s FROM users WHERE searchable = 1 AND disabled = 0 AND "
                "(name LIKE ? ESCAPE '\\' OR phone = ? OR user_id = ?) ORDER BY user_id LIMIT ?"
                % _COLUMNS, (like, query, query, limit))
    return [User(*r) for r in cur.fetchall()]


@transaction
def new_session(cur, user_id: str, now_ms: int, lifetime_ms: int) -> str:
    token = secrets.token_urlsafe(32)
    cur.execute("DELETE FROM sessions WHERE expires_at < ?", (now_ms,))
    cur.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (sm3_hex(token.encode()), user_id, now_ms, now_ms + lifetime_ms))
    return token


@transaction
def end_session(cur, token: str) -> None:
    cur.execute("DELETE FROM sessions WHERE token_hash = ?",
                (sm3_hex(token.encode("utf-8", "replace")),))


@transaction
def end_sessions(cur, user_id: str) -> int:
    """Every session of the user ends (log out everywhere); how many there were."""
    cur.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    return cur.rowcount


def session_user(cur, token: str, now_ms: int) -> User | None:
    cur.execute("SELECT %s FROM users WHERE user_id = (SELECT user_id FROM sessions "
                "WHERE token_hash = ? AND expires_at >= ?) AND disabled = 0" % _COLUMNS,
                (sm3_hex(token.encode("utf-8", "replace")), now_ms))
    row = cur.fetchone()
    return User(*row) if row else None


def set_name(cur, user_id: str, name: str, now_ms: int) -> None:
    """A new name; the userInfo's updateTime moves (other servers refresh on it)."""
    cur.execute("UPDATE users SET name = ?, update_time = ? WHERE user_id = ?",
                (name, now_ms, user_id))


def set_portrait(cur, user_id: str, portrait: str, now_ms: int) -> None:
    """The userInfo's portrait: a fileID of the user's (a public upload) or ""."""
    cur.execute("UPDATE users SET portrait = ?, update_time = ? WHERE user_id = ?",
                (portrait, now_ms, user_id))


def end_other_sessions(cur, user_id: str, token: str) -> int:
    """Every session of the user but ``token``'s ends; how many."""
    cur.execute("DELETE FROM sessions WHERE user_id = ? AND token_hash <> ?",
                (user_id, sm3_hex(token.encode("utf-8", "replace"))))
    return cur.rowcount


@transaction
def set_accept_strangers(cur, user_id: str, accept: bool, now_ms: int) -> None:
    """Whether ``user_id`` takes one-to-one messages from users who are not friends."""
    cur.execute("UPDATE users SET accept_strangers = ?, update_time = ? WHERE user_id = ?",
                (int(accept), now_ms, user_id))


@transaction
def prune_sessions(cur, now_ms: int) -> int:
    """Expired sessions deleted; how many."""
    cur.execute("DELETE FROM sessions WHERE expires_at < ?", (now_ms,))
    return cur.rowcount


def phones(cur) -> set[str]:
    """Every phone (the local part of a user ID) taken here."""
    cur.execute("SELECT phone FROM users")
    return {r[0] for r in cur.fetchall()}
