"""The web client in a real Chromium (Debian's `chromium`, driven by Playwright), against a real
federation: `twistd -n imfed` (the development default: management, node-a and node-b, each
port moved by a free offset) in its own process.  Alice is on node-a, Bob and Carol on node-b.

Marked `browser`: `pytest -m browser` runs these alone.  Without chromium they fail (CI installs
it), never skip.  Each test saves screenshots of what it shows in docs/webclient/ (the ones
docs/webclient.md shows)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, free_port_offset
from imfed.config import DEV_PORTS

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
SHOTS = os.path.join(REPO, "docs", "webclient")
TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")
ALICE, BOB, CAROL = "13500000001", "13600000002", "13600000003"


class Federation:
    """The development default as a process; start and restart it."""

    def __init__(self, folder: str) -> None:
        self.folder, self.offset = folder, free_port_offset(DEV_PORTS)
        self.proc = None

    def url(self, node: str) -> str:
        return "http://127.0.0.1:%d/" % ((9080 if node == "a" else 9081) + self.offset)

    def start(self) -> None:
        log = open(os.path.join(self.folder, "twistd.log"), "ab")
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "imfed", "--port-offset", str(self.offset)],
            cwd=self.folder, env=dict(os.environ, PYTHONPATH=REPO), stdout=log,
            stderr=subprocess.STDOUT)
        self._wait_for_logins()

    def _wait_for_logins(self, timeout: float = 90.0) -> None:
        import json
        import urllib.request

        deadline = time.monotonic() + timeout
        for node, phone in (("a", ALICE), ("b", BOB)):
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError("the federation exited: see %s/twistd.log" % self.folder)
                try:
                    request = urllib.request.Request(
                        self.url(node) + "api/v1/login", method="POST",
                        data=json.dumps({"login": phone, "password": "demo"}).encode())
                    with urllib.request.urlopen(request, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError("node-%s never let %s log in" % (node, phone))
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    fed = Federation(str(tmp_path_factory.mktemp("webclient")))
    fed.start()
    yield fed
    fed.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def page_for(browser, federation, node: str, phone: str, width: int = 1200, lang: str = "en"):
    context = browser.new_context(viewport={"width": width, "height": 800}, locale=lang,
                                  accept_downloads=True)
    page = context.new_page()
    page.on("dialog", lambda d: (_dialogs.append(d.message), d.dismiss()))
    page.goto(federation.url(node))
    page.fill("#login", phone)
    page.fill("#password", "demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#signout")
    return page


_dialogs: list[str] = []


def shot(page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name + ".png"))


def open_chat(page, peer: str) -> None:
    page.click("#tab-chats")
    page.click('#conversations li[data-key="u:%s"]' % peer)
    page.wait_for_selector("#compose")


def send_text(page, text: str) -> None:
    page.fill("#compose", text)
    page.click("#send")


def test_sign_in_refuses_a_wrong_password_then_signs_in(browser, federation):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en")
    page = context.new_page()
    response = page.goto(federation.url("a"))
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    shot(page, "sign-in")
    page.fill("#login", ALICE)
    page.fill("#password", "wrong")
    page.click("button[type=submit]")
    assert page.wait_for_selector("[role=alert]").inner_text() == "Wrong login or password"
    page.fill("#password", "demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#signout")
    assert "13500000001@node-a" in page.inner_text("header")
    # The token is the page's own: a reload stays signed in; signing out ends it.
    page.reload()
    page.wait_for_selector("#signout")
    page.click("#signout")
    page.wait_for_selector("#login")
    context.close()


def test_friends_across_servers_then_chat_both_ways(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    alice.click("#tab-contacts")
    alice.fill("#q", BOB)
    alice.click("#search button[type=submit]")
    alice.click("#search-results li.user:has-text('%s@node-b') button.add" % BOB)
    alice.wait_for_selector("text=Request sent")
    bob.click("#tab-contacts")
    bob.wait_for_selector("#incoming li.request")
    shot(bob, "contacts-pending-request")
    bob.click("#incoming li.request button.accept")
    bob.wait_for_selector("#friends li.friend:has-text('%s@node-a')" % ALICE)
    bob.click("#friends li.friend button.show-profile")  # asked of node-a
    assert "Alice Demo" in bob.wait_for_selector("#friends .profile").inner_text()
    bob.click("#friends li.friend button.chat-with")
    send_text(bob, "hello Alice, from node-b")
    alice.click("#tab-chats")
    alice.wait_for_selector("#conversations li[data-key='u:%s@node-b'] .badge" % BOB)
    assert alice.title().startswith("(1)")
    open_chat(alice, BOB + "@node-b")
    alice.wait_for_selector(".msg:has-text('hello Alice, from node-b')")
    send_text(alice, "hi Bob, from node-a")
    alice.wait_for_selector(".msg.mine:has-text('hi Bob') .state-sent")
    bob.wait_for_selector(".msg:has-text('hi Bob, from node-a')")
    assert alice.title() == "imfed"
    shot(alice, "conversation-list")
    alice.context.close()
    bob.context.close()


def png(width: int = 16, height: int = 16) -> bytes:
    """A valid RGB PNG, a gradient."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(v for x in range(width)
                                     for v in (x * 255 // width, y * 255 // height, 160))
                    for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                   0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_an_image_and_a_file_go_across_and_open_intact(browser, federation, tmp_path):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    _chat_between(alice, bob)
    image = tmp_path / "dot.png"
    image.write_bytes(png(96, 64))
    alice.set_input_files("#attach", str(image))
    alice.wait_for_selector(".msg.mine img[src^='blob:']")
    payload = bytes(range(256)) * 4096 + "文件 end".encode()
    document = tmp_path / "报告 2026.bin"
    document.write_bytes(payload)
    alice.set_input_files("#attach", str(document))
    alice.wait_for_selector(".msg.mine .file:has-text('报告 2026.bin')")
    send_text(alice, "take this back")
    alice.wait_for_selector(".msg.mine:has-text('take this back') button.recall")
    alice.click(".msg.mine:has-text('take this back') button.recall")
    alice.wait_for_selector(".msg.recalled")
    img = bob.wait_for_selector(".msg img[src^='blob:']")
    bob.wait_for_function("(img) => img.complete && img.naturalWidth === 96", arg=img)
    with bob.expect_download() as download:
        bob.click(".msg .file:has-text('报告 2026.bin') button.download")
    saved = tmp_path / "got.bin"
    download.value.save_as(str(saved))
    assert saved.read_bytes() == payload
    assert download.value.suggested_filename == "报告 2026.bin"
    bob.wait_for_selector(".msg.recalled:has-text('message recalled')")
    shot(bob, "chat-image-file-recall")
    alice.context.close()
    bob.context.close()


def _chat_between(alice, bob) -> None:
    """Alice and Bob (friends from the earlier test, or not: a message needs no friendship)
    in their conversation, on both pages."""
    alice.click("#tab-chats")
    if not alice.query_selector("#conversations li[data-key='u:%s@node-b']" % BOB):
        send_direct(alice, BOB + "@node-b", "opening")
    open_chat(alice, BOB + "@node-b")
    bob.click("#tab-chats")
    bob.wait_for_selector("#conversations li[data-key='u:%s@node-a']" % ALICE)
    open_chat(bob, ALICE + "@node-a")


def send_direct(page, user_id: str, text: str) -> None:
    page.evaluate("""async ([to, text]) => {
        const token = localStorage.getItem("imfed.token");
        await fetch("/api/v1/messages", {method: "POST",
          headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
          body: JSON.stringify({recvID: to, messageType: "text", content: {message: text}})});
    }""", [user_id, text])
    page.wait_for_selector("#conversations li[data-key='u:%s']" % user_id)


def test_injected_markup_stays_text(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    _chat_between(alice, bob)
    _dialogs.clear()
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    send_text(alice, evil)
    message = bob.wait_for_selector(".msg .text:text-is('%s')" % evil.replace("'", "\\'"))
    assert message.inner_text() == evil
    assert bob.query_selector(".msg img[src='x']") is None
    bob.wait_for_timeout(300)
    assert _dialogs == []
    alice.context.close()
    bob.context.close()


def test_a_group_across_both_servers(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    carol = page_for(browser, federation, "b", CAROL)
    alice.click("#tab-groups")
    alice.fill("#group-name", "跨服务器 team")
    alice.click("#create-group button[type=submit]")
    alice.wait_for_selector("#group-title:has-text('跨服务器 team')")
    alice.fill("#invite-ids", "%s@node-b, %s@node-b" % (BOB, CAROL))
    alice.click("#invite button[type=submit]")
    for page in (bob, carol):
        page.click("#tab-groups")
        page.wait_for_selector("#invitations li.invitation:has-text('跨服务器 team')")
        page.click("#invitations li.invitation button.accept")
    alice.click("#tab-groups")
    alice.click("#group-list li:has-text('跨服务器 team')")
    alice.wait_for_selector("#members li[data-user='%s@node-b']" % CAROL)
    alice.click("#members li[data-user='%s@node-b'] button.remove" % CAROL)
    alice.wait_for_selector("#members li[data-user='%s@node-b']" % CAROL, state="detached")
    alice.wait_for_selector("#members li[data-user='%s@node-b']" % BOB)
    assert "owner" in alice.inner_text("#members li[data-user='%s@node-a']" % ALICE)
    # Admins are users of the master: no "Make admin" for Bob, who is on node-b.
    assert alice.query_selector("#members li[data-user='%s@node-b'] button.admin" % BOB) is None
    alice.uncheck("#is-allow")
    alice.wait_for_selector("#is-allow:not(:checked)")
    gset = alice.evaluate("""async (id) => (await (await fetch("/api/v1/groups/" + id,
        {headers: {Authorization: "Bearer " + localStorage.getItem("imfed.token")}})
        ).json()).gset""",
                          alice.get_attribute("#group-list li", "data-group"))
    assert gset == {"isAllow": 2, "isVisible": 1}
    shot(alice, "group-members")
    alice.click("#open-group-chat")
    send_text(alice, "welcome to the group")
    bob.click("#tab-chats")
    bob.click("#conversations li:has-text('跨服务器 team')")
    bob.wait_for_selector(".msg:has-text('welcome to the group')")
    send_text(bob, "glad to be here")
    alice.wait_for_selector(".msg:has-text('glad to be here') .sender:has-text('node-b')")
    for page in (alice, bob, carol):
        page.context.close()


def test_a_restart_during_a_chat_loses_nothing_on_screen(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    _chat_between(alice, bob)
    send_text(alice, "before the restart")
    bob.wait_for_selector(".msg:has-text('before the restart')")
    federation.stop()
    bob.wait_for_selector("#live.down")
    federation.start()
    alice.reload()
    alice.wait_for_selector("#signout")
    open_chat(alice, BOB + "@node-b")
    send_text(alice, "after the restart")
    bob.wait_for_selector("#live:not(.down)", timeout=30000)
    bob.wait_for_selector(".msg:has-text('after the restart')", timeout=30000)
    assert bob.query_selector(".msg:has-text('before the restart')") is not None
    alice.context.close()
    bob.context.close()


def test_phone_width_and_chinese(browser, federation):
    bob = page_for(browser, federation, "b", BOB, width=390, lang="zh-CN")
    assert bob.inner_text("#signout") == "退出"
    assert bob.is_visible("#side") and not bob.is_visible("#main")
    shot(bob, "phone-list")
    bob.click("#conversations li")
    bob.wait_for_selector("#compose")
    assert bob.is_visible("#main") and not bob.is_visible("#side")
    shot(bob, "phone-chat")
    bob.click(".back")
    bob.wait_for_selector("#conversations")
    bob.select_option("#lang", "en")
    bob.wait_for_selector("#signout:text-is('Sign out')")
    bob.context.close()


def test_keyboard_only_sign_in_and_labelled_fields(browser, federation):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en")
    page = context.new_page()
    page.goto(federation.url("b"))
    for field in ("login", "password"):
        assert page.query_selector("label[for=%s]" % field) is not None
    page.keyboard.type(CAROL)  # the login field has focus
    page.keyboard.press("Tab")
    page.keyboard.type("demo")
    page.keyboard.press("Enter")
    page.wait_for_selector("#signout")
    assert re.search(r"Carol Demo", page.inner_text("header"))
    context.close()
