"""Logging in and out: sessions of this server's own users."""

from __future__ import annotations

from twisted.internet.threads import deferToThread

from ...metrics import LOGIN_FAILURES
from ...throttle import Throttle
from ...storage import transaction
from ...wire.errors import BadRequest, Forbidden, TooMany, Unauthorized
from ..store import users
from .accounts import MIN_PASSWORD
from ..store.unit import NodeStore

__all__ = ["Sessions", "REMEMBER_SECONDS"]

REMEMBER_SECONDS = 1.0
"""A session found in the store is taken on trust this long without asking again (a store
lookup saved on most requests of a busy client); a session ended here stops working at once,
one ended by another process (`imfed user del/passwd`) within this second, as the access
rules changed by `imfed acl` do."""


@transaction
def _new_password(work, user_id: str, password_hash: str, token: str, now_ms: int) -> int:
    """The user's new password; every other session of the user ends (this one stays).
    How many ended."""
    users.set_password(work, user_id, password_hash, now_ms, keep_sessions=True)
    return users.end_other_sessions(work, user_id, token)


class Sessions:
    def __init__(self, store: NodeStore, server_id: str, *, session_seconds: float,
                 max_failures: int, window_seconds: float) -> None:
        self.store = store
        self.failures = LOGIN_FAILURES.labels(server_id)
        self._known: dict[str, tuple[float, users.User]] = {}
        self.lifetime_ms = int(session_seconds * 1000)
        self.login_throttle = Throttle(store.clock, max_failures, window_seconds)
        self.source_throttle = Throttle(store.clock, 5 * max_failures, window_seconds)

    async def login(self, login: str, password: str, source: str) -> tuple[str, users.User]:
        """(token, user).  Throttled per account and per source address (429 with
        Retry-After); the hash is checked on a thread, and against a dummy when the account
        does not exist, so that neither the reactor nor the answer's timing tells anything."""
        user = await self.store.run(users.find_user, login)
        # The account is counted as itself, whichever of its spellings is typed (its phone
        # number, its user ID, ...); a login that names no account, as typed.
        account = user.user_id if user is not None else login.strip().lower()
        keys = ("account:" + account, "source:" + source)
        for key, throttle in zip(keys, (self.login_throttle, self.source_throttle)):
            wait = throttle.retry_after(key)
            if wait is not None:
                self.failures.inc()
                raise TooMany("too many failed logins; try again later", wait, "throttled")
        stored = user.password_hash if user is not None else None
        if not await deferToThread(users.check_password, password, stored):
            self.login_throttle.hit(keys[0])
            self.source_throttle.hit(keys[1])
            self.failures.inc()
            raise Unauthorized("wrong login or password", "bad_login")
        self.login_throttle.clear(keys[0])
        if user.disabled:
            raise Forbidden("the account %s is disabled; ask its operator" % user.user_id,
                            "user_disabled")
        if users.needs_rehash(stored):
            new_hash = await deferToThread(users.hash_password, password)
            await self.store.run(users.set_password, user.user_id, new_hash,
                                 self.store.now_ms(), keep_sessions=True)
        token = await self.store.run(users.new_session, user.user_id, self.store.now_ms(),
                                     self.lifetime_ms)
        return token, user

    async def user(self, token: str) -> users.User:
        """The user of a session token; 401 without one, or for one unknown or expired."""
        if not token:
            raise Unauthorized("log in first: Authorization: Bearer <token>", "no_session")
        now = self.store.clock.seconds()
        known = self._known.get(token)
        if known is not None and known[0] > now:
            return known[1]
        user = await self.store.run(users.session_user, token, self.store.now_ms())
        if user is None:
            self._known.pop(token, None)
            raise Unauthorized("the session is unknown or has expired", "no_session")
        if len(self._known) >= 10000:
            self._known.clear()
        self._known[token] = (now + REMEMBER_SECONDS, user)
        return user

    async def logout(self, token: str) -> None:
        self._known.pop(token, None)
        await self.store.run(users.end_session, token)

    def forget(self, user_id: str) -> None:
        """The user changed (a setting): its sessions are looked up again, not taken from
        memory."""
        for token, (_, known) in list(self._known.items()):
            if known.user_id == user_id:
                del self._known[token]

    async def change_password(self, user: users.User, token: str, password: str,
                              new_password: str) -> int:
        """The user, logged in, changes its password, giving the one it has: a wrong one is
        403 and counts as a failed login of the account (throttled alike).  Every other
        session ends; how many did."""
        if len(new_password) < MIN_PASSWORD:
            raise BadRequest("a password has at least %d characters" % MIN_PASSWORD,
                             "bad_newPassword")
        key = "account:" + user.user_id
        wait = self.login_throttle.retry_after(key)
        if wait is not None:
            raise TooMany("too many wrong passwords; try again later", wait, "throttled")
        current = await self.store.run(users.get_user, user.user_id)
        if not await deferToThread(users.check_password, password, current.password_hash):
            self.login_throttle.hit(key)
            self.failures.inc()
            raise Forbidden("that is not the account's password", "wrong_password")
        new_hash = await deferToThread(users.hash_password, new_password)
        self.forget(user.user_id)
        return await self.store.run(_new_password, user.user_id, new_hash, token,
                                    self.store.now_ms())

    async def logout_all(self, user: users.User) -> int:
        self.forget(user.user_id)
        return await self.store.run(users.end_sessions, user.user_id)
