"""Logins (docs/security.md): throttled per account and per source, the hash off the reactor
and the same work for an unknown account, logout of one session or of all."""

from __future__ import annotations

import time

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater

from conftest import ApiClient, add_user, lone_node, signed_up
from imfed.node.store import users


async def _attempt(node, login: str, password: str):
    client = ApiClient(node, login, password)
    started = time.perf_counter()
    status, answer = await client.call("POST", "login", {"login": login, "password": password})
    return status, answer, time.perf_counter() - started


@pytest_twisted.ensureDeferred
async def test_wrong_passwords_are_throttled_per_account_then_429_with_retry_after(tmp_path):
    async with lone_node(tmp_path, login_max_failures=3, login_window_seconds=60) as a:
        add_user(a, "100", "Alice")
        for _ in range(3):
            status, answer, _ = await _attempt(a, "100", "wrong")
            assert (status, answer["errcode"]) == (401, "bad_login")
        # The fourth, even with the right password, waits.
        response = await treq.post(a.client_url + "login",
                                   data=b'{"login": "100", "password": "secret"}')
        body = await response.json()
        assert response.code == 429 and body["errcode"] == "throttled"
        assert 1 <= int(response.headers.getRawHeaders(b"retry-after")[0]) <= 60
        # Issue #29, 12: another spelling of the same account is the same account.
        status, answer, _ = await _attempt(a, "100@node-a", "secret")
        assert (status, answer.get("errcode")) == (429, "throttled")
        # Another account from the same address is not locked by Alice's failures alone.
        await signed_up(a, "200", "Bob")


@pytest_twisted.ensureDeferred
async def test_unknown_accounts_cost_the_same_and_the_reactor_stays_free(tmp_path):
    async with lone_node(tmp_path, login_max_failures=1000) as a:
        bob = await signed_up(a, "200", "Bob")
        add_user(a, "100", "Alice")
        known = [(await _attempt(a, "100", "wrong%d" % i))[2] for i in range(5)]
        unknown = [(await _attempt(a, "nobody%d" % i, "wrong"))[2] for i in range(5)]
        known.sort(), unknown.sort()
        # Both do one password hash: the medians are alike (before: 38 ms vs 0.7 ms).
        assert unknown[2] > known[2] / 3, (known, unknown)
        # A storm of logins leaves /me answering: the hashes run on threads.
        storm = [ensureDeferred(_attempt(a, "100", "wrong-%d" % i)) for i in range(20)]
        await deferLater(reactor, 0.02, lambda: None)
        started = time.perf_counter()
        await bob.ok("GET", "me")
        me_time = time.perf_counter() - started
        await DeferredList(storm)
        # 20 hashes of ~50 ms each on the reactor thread would hold /me for about a second.
        assert me_time < 0.5, me_time


@pytest_twisted.ensureDeferred
async def test_logout_ends_this_session_and_logout_all_every_one(tmp_path):
    async with lone_node(tmp_path) as a:
        first = await signed_up(a, "100", "Alice")
        second = await ApiClient(a, "100").login()
        third = await ApiClient(a, "100").login()
        await first.ok("POST", "logout")
        status, answer = await first.call("GET", "me")
        assert (status, answer["errcode"]) == (401, "no_session")
        await second.ok("GET", "me")
        answer = await second.ok("POST", "logout/all")
        assert answer["ended"] == 2
        for client in (second, third):
            status, _ = await client.call("GET", "me")
            assert status == 401


def test_old_scrypt_hashes_still_verify_and_are_marked_for_rehash():
    import hashlib

    salt = bytes(16)
    digest = hashlib.scrypt(b"pw", salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    stored = "scrypt$16384$8$1$%s$%s" % (salt.hex(), digest.hex())
    assert users.check_password("pw", stored) and not users.check_password("px", stored)
    assert users.needs_rehash(stored)
    fresh = users.hash_password("pw")
    assert fresh.startswith("$argon2id$") and not users.needs_rehash(fresh)
    assert users.check_password("pw", fresh) and not users.check_password("pw", None)
