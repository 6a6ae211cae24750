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


class ThirdServer:
    """node-c beside the development federation: its own `twistd -n imfed --config FILE`
    process, joined through the real flow (`imfed node join`, the operator's `imfed admin
    approve`), with one user, Dave; a test stops and starts it to see failures."""

    def __init__(self, federation: Federation) -> None:
        from imfed.crypto.pki import Certificate
        from imfed.testing import free_port

        self.fed = federation
        self.folder = os.path.join(federation.folder, "node-c")
        os.makedirs(self.folder, exist_ok=True)
        self.config = os.path.join(self.folder, "imfed.toml")
        self.port, self.client_port = free_port(), free_port()
        with open(self.config, "w") as f:
            f.write('data_dir = "%s"\n[node]\nserver_id = "node-c"\nlisten = "127.0.0.1:%d"\n'
                    'address = "https://127.0.0.1:%d"\nmanagement_url = "https://127.0.0.1:%d"'
                    '\nmanagement_id = "manager"\nclient_listen = "127.0.0.1:%d"\n'
                    'outbox_retry_max_seconds = 2\n'
                    % (self.folder, self.port, self.port, 8443 + federation.offset,
                       self.client_port))
        with open(os.path.join(federation.folder, "imfed-data", "management", "ca",
                               "ca.pem"), "rb") as f:
            self.ca_fingerprint = Certificate.from_pem(f.read()).fingerprint
        self.proc = None

    def imfed(self, *args, cwd=None) -> str:
        done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "imfed"), *args],
                              cwd=cwd or self.folder, env=dict(os.environ, PYTHONPATH=REPO),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def join(self) -> None:
        import json

        joining = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "imfed"), "node", "join",
             "--config", self.config, "--ca-fingerprint", self.ca_fingerprint,
             "--contact-name", "Dev", "--contact-email", "dev@example.com",
             "--contact-mobile", "13500000009", "--wait", "90"],
            cwd=self.folder, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:
            pending = [a for a in json.loads(self.imfed("admin", "applications", "--json",
                                                        cwd=self.fed.folder))
                       if a.get("server_id") == "node-c"]
            if pending:
                break
            assert joining.poll() is None, joining.stdout.read()
            assert time.monotonic() < deadline, "node-c's application never came"
            time.sleep(0.3)
        self.imfed("admin", "approve", pending[0]["application_id"], cwd=self.fed.folder)
        out, _ = joining.communicate(timeout=90)
        assert joining.returncode == 0, out
        self.imfed("user", "add", "13900000004", "--name", "Dave Demo", "--password", "dave-demo",
                   "--config", self.config)

    def start(self) -> None:
        log = open(os.path.join(self.folder, "twistd.log"), "ab")
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "imfed", "--config", self.config], cwd=self.folder,
            env=dict(os.environ, PYTHONPATH=REPO), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not _answers("http://127.0.0.1:%d/" % self.client_port):
            assert self.proc.poll() is None, "node-c exited: see %s/twistd.log" % self.folder
            assert time.monotonic() < deadline, "node-c never answered"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def node_c(federation):
    third = ThirdServer(federation)
    third.join()
    third.start()
    yield third
    third.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), "chromium is not installed (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


_dialogs: list[str] = []
PASSWORDS: dict[str, str] = {}  # one a test changed (the demo one is too short to set again)


class Person:
    """One person's browser tab, signed in; page errors collected (a test fails on any)."""

    def __init__(self, browser, federation, node: str, phone: str, width: int = 1200,
                 lang: str = "en", context=None) -> None:
        self.context = context or browser.new_context(
            viewport={"width": width, "height": 800}, locale=lang, accept_downloads=True)
        self.page = page = self.context.new_page()
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("dialog", lambda d: (_dialogs.append(d.message), d.dismiss()))
        page.goto(federation.url(node))
        if context is None:
            page.fill("#login", phone)
            page.fill("#password", PASSWORDS.get(phone, "demo"))
            page.click("button[type=submit]")
        page.wait_for_selector("#signout")

    def __getattr__(self, name):
        return getattr(self.page, name)

    def call(self, method: str, path: str, body=None):
        """The client API with this tab's token, as the page itself would call it."""
        return self.page.evaluate("""async ([method, path, body]) => {
            const r = await fetch("/api/v1/" + path, {method, headers: {
                "Authorization": "Bearer " + localStorage.getItem("imfed.token"),
                "Content-Type": "application/json"},
                body: body === null ? undefined : JSON.stringify(body)});
            return {status: r.status, body: await r.json()};
        }""", [method, path, body])

    def close(self) -> None:
        assert self.errors == [], self.errors
        self.context.close()


def page_for(browser, federation, node, phone, width=1200, lang="en") -> Person:
    return Person(browser, federation, node, phone, width, lang)


def shot(page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name + ".png"))


def open_chat(page, key: str) -> None:
    page.click("#tab-chats")
    page.click('#conversations li[data-key="%s"]' % key)
    page.wait_for_selector('section.chat[data-key="%s"] #messages:not(:has(.loading))' % key)


def send_text(page, text: str) -> None:
    page.fill("#compose", text)
    page.click("#send")


def confirm(page) -> None:
    page.click(".dialog button.primary")


A, B, C = ALICE + "@node-a", BOB + "@node-b", CAROL + "@node-b"


def chat_between(alice: Person, bob: Person) -> None:
    """Alice and Bob (a message needs no friendship) in their conversation, on both pages."""
    alice.call("POST", "messages", {"recvID": B, "messageType": "text",
                                    "content": {"message": "opening"}})
    open_chat(alice, "u:" + B)
    bob.wait_for_selector("#conversations li[data-key='u:%s']" % A)
    open_chat(bob, "u:" + A)


def group_of(owner: Person, name: str, *members: Person) -> str:
    """A group of owner's with members who accepted, through the API; its ID."""
    gid = owner.call("POST", "groups", {"groupName": name})["body"]["groupInfo"]["groupID"]
    if members:
        ids = [m.evaluate("async () => (await (await fetch('/api/v1/me', {headers: "
                          "{Authorization: 'Bearer ' + localStorage.getItem('imfed.token')}}))"
                          ".json()).userInfo.userID")
               for m in members]
        assert owner.call("POST", "groups/%s/invite" % gid, {"userIDs": ids})["status"] == 200
        for m in members:
            deadline = time.monotonic() + 30
            while True:
                inv = [i for i in m.call("GET", "groups/invitations")["body"]["invitations"]
                       if i["groupInfo"]["groupID"] == gid]
                if inv:
                    break
                assert time.monotonic() < deadline, "no invitation came"
                time.sleep(0.2)
            assert m.call("POST", "groups/invitations/%s/answer" % inv[0]["invitationID"],
                          {"agree": True})["status"] == 200
        deadline = time.monotonic() + 30
        while len(owner.call("GET", "groups/" + gid)["body"]["members"]) < 1 + len(members):
            assert time.monotonic() < deadline, "the members never joined"
            time.sleep(0.2)
        for m in members:
            while not [g for g in m.call("GET", "groups")["body"]["groups"]
                       if g["groupInfo"]["groupID"] == gid]:
                assert time.monotonic() < deadline, "the member's server never knew"
                time.sleep(0.2)
    return gid


@pytest.fixture
def people(browser, federation):
    """Alice (node-a) and Bob (node-b), each in a tab of their own; closed after the test,
    which fails on any error their pages raised."""
    made = [page_for(browser, federation, "a", ALICE), page_for(browser, federation, "b", BOB)]
    yield made
    for person in made:
        person.close()


@pytest.fixture
def chatting(people):
    """Alice and Bob in their conversation, on both pages."""
    chat_between(*people)
    return people


def befriend(alice: Person, bob: Person) -> None:
    """Alice and Bob friends (already, or now through the API)."""
    if [f for f in alice.call("GET", "friends")["body"]["friends"] if f["userID"] == B]:
        return
    assert alice.call("POST", "friends/requests", {"userID": B, "remark": ""})["status"] == 200
    deadline = time.monotonic() + 20
    while not (asked := [r for r in bob.call("GET", "friends/requests")["body"]["requests"]
                         if r["from"] == A]):
        assert time.monotonic() < deadline, "no friend request came"
        time.sleep(0.2)
    bob.call("POST", "friends/requests/%s/answer" % asked[0]["requestID"], {"agree": True})

# -- signing in; the page as served --


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
    # People by their names, not their IDs.
    assert "Alice Demo" in page.inner_text("header")
    assert A not in page.inner_text("header")
    page.reload()
    page.wait_for_selector("#signout")
    page.click("#signout")
    page.wait_for_selector("#login")
    context.close()


def test_assets_compressed_cached_versioned_and_an_icon(federation):
    import gzip
    import urllib.request

    def get(path, **headers):
        request = urllib.request.Request(federation.url("a") + path.lstrip("/"),
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    status, headers, body = get("/", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    page = gzip.decompress(body).decode()
    version = re.search(r'/static/([0-9a-f]{16})/main\.js', page).group(1)
    assert get("/", **{"If-None-Match": headers["ETag"]})[0] == 304
    total = len(body)
    for name in ("main.js", "chat.js", "state.js", "api.js", "dom.js", "i18n.js",
                 "contacts.js", "groups.js", "app.css"):
        status, h, data = get("/static/%s/%s" % (version, name), **{"Accept-Encoding": "gzip"})
        assert status == 200, name
        assert h["Cache-Control"] == "public, max-age=31536000, immutable", name
        assert h["Content-Encoding"] == "gzip" and "script-src 'self'" in \
            h["Content-Security-Policy"]
        total += len(data)
        # An old version's file is asked again each time; an unversioned one too.
        assert get("/static/0000000000000000/" + name)[1]["Cache-Control"] == "no-cache"
    assert total < 60 * 1024, total
    status, h, icon = get("/favicon.ico")
    assert status == 200 and h["Content-Type"] == "image/svg+xml" and icon.startswith(b"<svg")
    assert get("/static/%s/nothing.js" % version)[0] == 404
    assert get("/static/%s/..%%2fsetup.cfg" % version)[0] == 404


# -- people and conversations --


def test_friends_across_servers_by_name_then_chat_both_ways(people):
    alice, bob = people
    if not [f for f in bob.call("GET", "friends")["body"]["friends"] if f["userID"] == A]:
        alice.click("#tab-contacts")
        alice.fill("#q", BOB)
        alice.click("#search button[type=submit]")
        alice.click("#search-results li.user:has-text('Bob Demo') button.add")
        alice.wait_for_selector("text=Request sent")
        bob.click("#tab-contacts")
        request = bob.wait_for_selector("#incoming li.request")
        assert "Alice Demo" in request.inner_text()
        shot(bob, "contacts-pending-request")
        bob.click("#incoming li.request button.accept")
    bob.click("#tab-contacts")
    bob.wait_for_selector("#friends li.friend:has-text('Alice Demo')")
    bob.click("#friends li.friend[data-user='%s'] button.chat-with" % A)
    send_text(bob, "hello Alice, from node-b")
    alice.click("#tab-chats")
    row = alice.wait_for_selector("#conversations li[data-key='u:%s']:has(.badge)" % B)
    assert "Bob Demo" in row.inner_text() and B not in row.inner_text()
    assert row.query_selector(".time").inner_text() == "just now"
    assert alice.title().startswith("(")
    open_chat(alice, "u:" + B)
    assert alice.inner_text("#chat-title") == "Bob Demo"
    alice.wait_for_selector(".msg:has-text('hello Alice, from node-b')")
    # The composer has the focus once a chat opens.
    assert alice.evaluate("document.activeElement.id") == "compose"
    send_text(alice, "hi Bob, from node-a")
    alice.wait_for_selector(".msg.mine:has-text('hi Bob') .state-sent")
    bob.wait_for_selector(".msg:has-text('hi Bob, from node-a')")
    assert alice.title() == "imfed"
    shot(alice, "conversation-list")


def test_unread_counts_last_across_reloads_and_clear_in_other_tabs(chatting, federation):
    alice, bob = chatting
    alice.click("#tab-contacts")  # away from the chat
    for i in range(3):
        send_text(bob, "unread %d" % i)
    alice.click("#tab-chats")
    badge = "#conversations li[data-key='u:%s'] .badge" % B
    alice.wait_for_selector(badge + ":text-is('3')")
    alice.reload()
    assert alice.wait_for_selector(badge).inner_text() == "3"
    # A second tab of Alice's: reading in the first clears it there, live.
    other = Person(None, federation, "a", ALICE, context=alice.context)
    assert other.wait_for_selector(badge).inner_text() == "3"
    open_chat(alice, "u:" + B)
    other.wait_for_selector(badge, state="detached")
    assert other.title() == "imfed"
    other.page.close()
    # The chat opened with a line above the first of the three.
    assert alice.eval_on_selector(".unread-line", "e => e.nextElementSibling.textContent") \
        .startswith("unread 0")
    assert alice.inner_text(".unread-line") == "New messages"
    assert len(alice.query_selector_all(".unread-line")) == 1
    open_chat(alice, "u:" + B)  # again, all read: no line
    assert alice.query_selector(".unread-line") is None


def test_a_recalled_message_stays_recalled_after_a_reload(chatting):
    alice, bob = chatting
    send_text(alice, "secret to take back")
    alice.click(".msg.mine:has-text('secret to take back') button.recall")
    confirm(alice)
    alice.wait_for_selector(".msg.mine.recalled")
    bob.wait_for_selector(".msg.recalled:has-text('Alice Demo recalled a message')")
    for page in (alice, bob):
        page.reload()
        page.wait_for_selector("#conversations")
        assert "secret" not in page.inner_text("#conversations")
        assert "Message recalled" in page.inner_text("#conversations li:first-child")


def test_a_failed_send_keeps_the_text_and_says_why_in_the_interface(browser, federation):
    _dialogs.clear()
    alice = page_for(browser, federation, "a", ALICE, lang="zh-CN")
    alice.goto(federation.url("a") + "#/chat/u/nobody@no-such-server")
    alice.wait_for_selector("#compose")
    send_text(alice, "这段话不能丢")
    note = alice.wait_for_selector("#toasts [role=alert]")
    assert "no-such-server" not in note.inner_text() and "HTTP" not in note.inner_text()
    assert alice.input_value("#compose") == "这段话不能丢"
    assert _dialogs == []  # no alert()
    alice.close()


def test_drafts_are_kept_per_conversation(chatting):
    alice, bob = chatting
    alice.fill("#compose", "half a thought")
    alice.wait_for_timeout(500)
    alice.reload()
    alice.wait_for_selector("#conversations li[data-key='u:%s'] .draft" % B)
    open_chat(alice, "u:" + B)
    assert alice.input_value("#compose") == "half a thought"
    alice.fill("#compose", "")


def test_a_new_message_draws_only_itself(chatting):
    alice, bob = chatting
    send_text(bob, "first, to keep")
    alice.wait_for_selector(".msg:has-text('first, to keep')")
    alice.evaluate("document.querySelector(\".msg[data-id]:last-of-type\").dataset.probe = 'kept'")
    probe = alice.eval_on_selector(".msg:has-text('first, to keep')", "e => e.dataset.probe")
    send_text(bob, "second, new")
    alice.wait_for_selector(".msg:has-text('second, new')")
    assert alice.eval_on_selector(".msg:has-text('first, to keep')",
                                  "e => e.dataset.probe") == probe == "kept"


def test_a_message_that_comes_while_a_chat_opens_is_shown(chatting, federation):
    """The history is read at the server before a new message is stored, and the message's
    event reaches the page before the history does: the message is still shown."""
    alice, bob = chatting
    bob.goto(federation.url("b") + "#/chats")
    bob.reload()
    row = "#conversations li[data-key='u:%s']" % A
    bob.wait_for_selector(row)
    text = "while it opens %d" % time.time()

    def hold(route):
        answer = route.fetch()  # the history as the server read it, without the message
        assert alice.call("POST", "messages", {"recvID": B, "messageType": "text",
                                                "content": {"message": text}})["status"] == 200
        bob.wait_for_selector("%s .preview:has-text('%s')" % (row, text))  # its event came
        route.fulfill(response=answer)

    bob.route("**/api/v1/conversations/*/messages*", hold)
    try:
        bob.click(row)
        bob.wait_for_selector(".msg:has-text('%s')" % text)
    finally:
        bob.unroute("**/api/v1/conversations/*/messages*")
    assert bob.eval_on_selector_all(".msg:has-text('%s')" % text, "els => els.length") == 1


def test_reply_mention_links_emoji_and_dates(people, federation):
    _dialogs.clear()
    alice, bob = people
    gid = group_of(alice, "reply team", bob)
    alice.goto(federation.url("a") + "#/chat/g/" + gid)
    alice.wait_for_selector("#compose")
    send_text(alice, "see https://example.org/a?b=1 and javascript:alert(1)")
    bob.goto(federation.url("b") + "#/chat/g/" + gid)
    msg = bob.wait_for_selector(".msg:has-text('see https://example.org')")
    link = msg.query_selector("a")
    assert link.get_attribute("href") == "https://example.org/a?b=1"
    assert "noopener" in link.get_attribute("rel") and len(msg.query_selector_all("a")) == 1
    assert bob.query_selector(".day:text-is('Today')") is not None
    # Bob answers it: the quote goes as plain text the standard carries.
    msg.hover()
    msg.query_selector("button.reply").click()
    bob.wait_for_selector("#reply-bar:not(.hidden)")
    bob.type("#compose", "@Ali")
    bob.wait_for_selector("#mention-picker li:has-text('Alice Demo')")
    bob.keyboard.press("Enter")
    bob.click("#emoji")
    bob.click("#emoji-grid button:text-is('👍')")
    bob.click("#send")
    got = alice.wait_for_selector(".msg:has(blockquote)")
    assert "Alice Demo: see https://example.org" in got.inner_text()
    assert alice.query_selector(".msg.mentioned .mention.me:text-is('@Alice Demo')")
    assert "👍" in got.inner_text()
    stored = alice.call("GET", "groups/%s/messages?before=&limit=1" % gid)["body"]["messages"]
    assert stored[-1]["messageInfo"]["content"]["message"].startswith("> Alice Demo: see ")
    assert _dialogs == []


def test_search_pin_mute_and_forward(browser, chatting, federation):
    alice, bob = chatting
    send_text(bob, "会议改到周三下午")
    alice.wait_for_selector(".msg:has-text('会议改到周三下午')")
    alice.fill("#message-search", "周三")
    alice.press("#message-search", "Enter")
    result = alice.wait_for_selector("#message-results li.result:has-text('会议改到周三下午')")
    result.click()
    alice.wait_for_selector("section.chat[data-key='u:%s']" % B)
    # The list's filter searches the messages on Enter (the header's search is not on phones).
    alice.fill("#chat-filter", "改到周三")
    alice.press("#chat-filter", "Enter")
    alice.wait_for_selector("#message-results li.result:has-text('会议改到周三下午')")
    alice.fill("#chat-filter", "")
    # Pinned goes first; muted counts in no total.
    gid = group_of(alice, "pin me")
    alice.goto(federation.url("a") + "#/chat/g/" + gid)
    alice.wait_for_selector("section.chat[data-key='g:%s'] #compose" % gid)
    alice.click("#pin")
    alice.wait_for_selector("#conversations li:first-child[data-key='g:%s'] .pin" % gid)
    # Pins and mutes follow Alice to her other device (its own browser storage), live.
    laptop = page_for(browser, federation, "a", ALICE)
    laptop.wait_for_selector("#conversations li:first-child[data-key='g:%s'] .pin" % gid)
    laptop.goto(federation.url("a") + "#/chat/g/" + gid)
    laptop.wait_for_selector("#pin[aria-pressed='true']")
    laptop.click("#mute")
    alice.wait_for_selector("#mute[aria-pressed='true']")
    laptop.click("#mute")
    alice.wait_for_selector("#mute[aria-pressed='false']")
    laptop.close()
    open_chat(alice, "u:" + B)
    alice.click("#mute")
    alice.click("#tab-contacts")
    before = alice.title()  # other chats' unread, if any
    send_text(bob, "quiet please")
    alice.click("#tab-chats")
    alice.wait_for_selector("#conversations li[data-key='u:%s'] .badge.quiet" % B)
    assert alice.title() == before
    open_chat(alice, "u:" + B)
    alice.click("#mute")
    # Forward Bob's message to the group.
    msg = alice.wait_for_selector(".msg:has-text('quiet please')")
    msg.hover()
    msg.query_selector("button.forward").click()
    alice.click(".dialog button.pick-conv[data-key='g:%s']" % gid)
    open_chat(alice, "g:" + gid)
    alice.wait_for_selector(".msg.mine:has-text('quiet please')")
    alice.click("#pin")  # unpinned again


def test_profile_name_and_picture_reach_the_other_server(chatting, tmp_path):
    alice, bob = chatting
    alice.click("#tab-contacts")
    picture = tmp_path / "me.png"
    picture.write_bytes(png(40, 40))
    alice.fill("#my-name", "Alice 王")
    alice.set_input_files("#portrait-file", str(picture))
    alice.click("#save-profile")
    alice.wait_for_selector(".me-name:text-is('Alice 王')")
    # Bob, after a reload, sees the new name and picture.
    bob.reload()
    bob.wait_for_function("() => [...document.querySelectorAll('#conversations .name')]"
                          ".some(e => e.textContent === 'Alice 王')", timeout=20000)
    bob.wait_for_selector("#conversations li[data-key='u:%s'] .avatar img" % A)
    alice.fill("#my-name", "Alice Demo")
    alice.click("#save-profile")
    alice.wait_for_selector(".me-name:text-is('Alice Demo')")


def test_password_change_signs_out_the_other_sessions(browser, federation):
    carol = page_for(browser, federation, "b", CAROL)
    other = page_for(browser, federation, "b", CAROL)
    carol.click("#tab-contacts")
    carol.click("#profile summary")
    carol.fill("#old-password", "wrong one")
    carol.fill("#new-password", "a new password")
    carol.click("#password-form button[type=submit]")
    carol.wait_for_selector("#toasts [role=alert]:has-text('current password is wrong')")
    old, new = PASSWORDS.get(CAROL, "demo"), "carol-%d" % time.time()
    carol.fill("#old-password", old)
    carol.fill("#new-password", new)
    carol.click("#password-form button[type=submit]")
    carol.wait_for_selector("#toasts:has-text('Password changed')")
    PASSWORDS[CAROL] = new
    other.wait_for_selector("#login", timeout=40000)
    carol.reload()
    carol.wait_for_selector("#signout")  # this session stays
    carol.close()
    other.context.close()


# -- files --


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


def test_an_image_and_a_file_go_across_and_open_intact(chatting, tmp_path):
    alice, bob = chatting
    image = tmp_path / "dot.png"
    image.write_bytes(png(96, 64))
    alice.set_input_files("#attach", str(image))
    alice.wait_for_selector(".msg.mine img[src^='blob:']")
    payload = bytes(range(256)) * 4096 + "文件 end".encode()
    document = tmp_path / "报告 2026.bin"
    document.write_bytes(payload)
    alice.set_input_files("#attach", str(document))
    alice.wait_for_selector(".msg.mine .file:has-text('报告 2026.bin')")
    img = bob.wait_for_selector(".msg img[src^='blob:']")
    bob.wait_for_function("(img) => img.complete && img.naturalWidth === 96", arg=img)
    with bob.expect_download() as download:
        bob.click(".msg .file:has-text('报告 2026.bin') button.download")
    saved = tmp_path / "got.bin"
    download.value.save_as(str(saved))
    assert saved.read_bytes() == payload
    assert download.value.suggested_filename == "报告 2026.bin"
    # The image viewer opens and closes with Escape.
    img.click()
    bob.wait_for_selector(".dialog img.full")
    bob.keyboard.press("Escape")
    bob.wait_for_selector(".dialog", state="detached")
    shot(bob, "chat-image-file-recall")


def test_a_pasted_screenshot_is_sent(chatting):
    alice, bob = chatting
    alice.evaluate("""(bytes) => {
        const file = new File([new Uint8Array(bytes)], "pasted.png", {type: "image/png"});
        const data = new DataTransfer(); data.items.add(file);
        const box = document.querySelector("#compose");
        box.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
    }""", list(png(30, 20)))
    img = bob.wait_for_selector(".msg img[alt='pasted.png'][src^='blob:']")
    bob.wait_for_function("(img) => img.complete && img.naturalWidth === 30", arg=img)


def test_injected_markup_stays_text(chatting):
    alice, bob = chatting
    _dialogs.clear()
    evil = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    send_text(alice, evil)
    message = bob.wait_for_selector(".msg .text:text-is('%s')" % evil.replace("'", "\\'"))
    assert message.inner_text() == evil
    assert bob.query_selector(".msg img[src='x']") is None
    bob.wait_for_timeout(300)
    assert _dialogs == []


# -- groups --


def test_a_group_across_both_servers(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB)
    carol = page_for(browser, federation, "b", CAROL)
    befriend(alice, bob)
    alice.click("#tab-groups")
    alice.fill("#group-name", "跨服务器 team")
    alice.click("#create-group button[type=submit]")
    alice.wait_for_selector("#group-title:has-text('跨服务器 team')")
    # Invite a friend by ticking, another by ID.
    alice.check("#invite-friends input[value='%s']" % B)
    alice.fill("#invite-ids", C)
    alice.click("#invite button[type=submit]")
    for page in (bob, carol):
        page.click("#tab-groups")
        page.wait_for_selector("#invitations li.invitation:has-text('跨服务器 team')")
        page.click("#invitations li.invitation:has-text('跨服务器 team') button.accept")
    alice.wait_for_selector("#members li[data-user='%s']" % C)
    alice.wait_for_selector("#group-count:text-is('3 Members')")
    assert "Owner" in alice.inner_text("#members li[data-user='%s']" % A)
    assert alice.query_selector("#members li[data-user='%s'] button.admin" % B) is None
    alice.fill("#notice-text", "周五发版，请大家留意")
    alice.click("#notice-form button[type=submit]")
    alice.wait_for_selector("#group-notice p:text-is('周五发版，请大家留意')")
    shot(alice, "group-members")
    alice.click("#open-group-chat")
    send_text(alice, "welcome to the group")
    bob.goto(federation.url("b") + "#/chats")
    bob.click("#conversations li:has-text('跨服务器 team')")
    bob.wait_for_selector(".msg:has-text('welcome to the group')")
    bob.wait_for_selector("#announcement:has-text('周五发版')")
    send_text(bob, "glad to be here")
    alice.wait_for_selector(".msg:has-text('glad to be here') .sender:text-is('Bob Demo')")
    gid = bob.eval_on_selector("section.chat", "e => e.dataset.key.slice(2)")
    carol_name = carol.call("GET", "me")["body"]["userInfo"]["name"]
    assert carol.call("POST", "groups/%s/messages" % gid, {
        "messageType": "text", "content": {"message": "收到，周五见 👍"}})["status"] == 200
    alice.wait_for_selector(".msg:has-text('周五见') .sender:text-is('%s')" % carol_name)
    shot(alice, "group-chat")
    # A rename and a removal show in the chat as lines; the removed member can write no more.
    alice.goto(federation.url("a") + "#/group/" + gid)
    alice.fill("#new-name", "跨服务器 team 2")
    alice.click("#rename button[type=submit]")
    bob.wait_for_selector(".system:has-text('renamed the group to \"跨服务器 team 2\"')")
    alice.click("#members li[data-user='%s'] button.remove" % B)
    confirm(alice)
    bob.wait_for_selector(".chat .gone:has-text('no longer in this group')")
    assert bob.query_selector("#compose") is None
    # The lines are kept: after a reload they stand where they stood, between the messages.
    carol.goto(federation.url("b") + "#/chats")
    carol.reload()
    carol.click("#conversations li:has-text('跨服务器 team 2')")
    carol.wait_for_selector(".system:has-text('left the group')")
    seen = carol.eval_on_selector_all(
        ".chat .system, .chat .msg .text", "els => els.map(e => e.textContent)")
    order = ["Bob Demo joined", "set the announcement: 周五发版", "welcome to the group",
             "glad to be here", "renamed the group to \"跨服务器 team 2\"",
             "Bob Demo left the group"]
    at = [next(i for i, text in enumerate(seen) if part in text) for part in order]
    assert at == sorted(at), seen
    alice.close()
    bob.close()
    carol.close()


def test_group_history_opens_on_the_newest_and_pages_back(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    gid = group_of(alice, "long history")
    alice.evaluate("""async (gid) => {
        const token = localStorage.getItem("imfed.token");
        for (let i = 0; i < 130; i++)
            await fetch("/api/v1/groups/" + gid + "/messages", {method: "POST",
              headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
              body: JSON.stringify({messageType: "text", content: {message: "line " + i}})});
    }""", gid)
    alice.reload()
    open_chat(alice, "g:" + gid)
    alice.wait_for_selector(".msg:has-text('line 129')")
    assert alice.query_selector(".msg .text:text-is('line 0')") is None
    for _ in range(5):
        alice.eval_on_selector("#messages", "e => { e.scrollTop = 0; }")
        alice.wait_for_timeout(400)
        if alice.query_selector(".msg .text:text-is('line 0')"):
            break
    alice.wait_for_selector(".msg .text:text-is('line 0')")
    texts = alice.eval_on_selector_all(".msg .text", "es => es.map(e => e.textContent)")
    lines = [t for t in texts if t.startswith("line ")]
    assert lines == ["line %d" % i for i in range(130)]
    alice.close()


def test_group_recall_by_an_admin(people, federation):
    alice, bob = people
    gid = group_of(alice, "recall room", bob)
    bob.goto(federation.url("b") + "#/chat/g/" + gid)
    bob.wait_for_selector("#compose")
    send_text(bob, "oops, wrong group")
    alice.goto(federation.url("a") + "#/chat/g/" + gid)
    msg = alice.wait_for_selector(".msg:has-text('oops, wrong group')")
    msg.hover()
    msg.query_selector("button.recall").click()  # the owner may recall anyone's
    confirm(alice)
    bob.wait_for_selector(".msg.recalled")
    assert bob.query_selector(".msg:has-text('oops, wrong group')") is None


# -- resilience, phone, language, keyboard --


def test_a_restart_during_a_chat_loses_nothing_on_screen(chatting, federation):
    alice, bob = chatting
    send_text(alice, "before the restart")
    bob.wait_for_selector(".msg:has-text('before the restart')")
    federation.stop()
    bob.wait_for_selector("#live.down")
    federation.start()
    alice.reload()
    alice.wait_for_selector("#signout")
    open_chat(alice, "u:" + B)
    send_text(alice, "after the restart")
    bob.wait_for_selector("#live:not(.down)", timeout=30000)
    bob.wait_for_selector(".msg:has-text('after the restart')", timeout=30000)
    assert bob.query_selector(".msg:has-text('before the restart')") is not None


def test_phone_width_navigation_contacts_and_chinese(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    bob = page_for(browser, federation, "b", BOB, width=390, lang="zh-CN")
    chat_between(alice, bob)
    bob.goto(federation.url("b") + "#/chats")
    assert bob.inner_text("#signout") == "退出登录"
    assert bob.is_visible("#side") and not bob.is_visible("#main")
    header = bob.eval_on_selector("header", "e => e.getBoundingClientRect().height")
    assert header < 800 / 8, header
    shot(bob, "phone-list")
    bob.click("#conversations li[data-key='u:%s']" % A)
    bob.wait_for_selector("#compose")
    assert bob.is_visible("#main") and not bob.is_visible("#side")
    box = bob.eval_on_selector("#compose", "e => e.getBoundingClientRect().bottom")
    assert box <= 800, box  # the composer is on the screen
    # Pin and mute are there on a phone too (their icons), named for screen readers.
    assert bob.is_visible("#pin") and bob.is_visible("#mute")
    assert bob.get_attribute("#mute", "aria-label") == "免打扰"
    bob.click("#mute")
    bob.wait_for_selector("#mute[aria-pressed='true'][aria-label='取消免打扰']")
    bob.click("#mute")
    bob.wait_for_selector("#mute[aria-pressed='false']")
    shot(bob, "phone-chat")
    bob.go_back()  # the browser's Back: to the list, still in the app
    bob.wait_for_selector("#conversations")
    assert bob.url.startswith(federation.url("b"))
    # Searching the messages from the list (the header's box is not shown on a phone).
    assert not bob.is_visible("#message-search")
    bob.fill("#chat-filter", "openi")
    bob.click(".search-more:text-is('搜索聊天记录：“openi”')")
    bob.wait_for_selector("#message-results li.result:has-text('opening')")
    bob.go_back()
    bob.wait_for_selector("#conversations")
    # Contacts at phone width: a friend request can be answered.
    carol = page_for(browser, federation, "b", CAROL)
    carol.call("POST", "friends/delete", {"userID": A})
    bob_id = B
    carol.call("POST", "friends/delete", {"userID": bob_id})
    assert carol.call("POST", "friends/requests", {"userID": bob_id, "remark": "hi"})[
        "status"] == 200
    bob.click("#tab-contacts")
    accept = bob.wait_for_selector("#incoming li.request button.accept")
    assert accept.is_visible()
    accept.click()
    bob.wait_for_selector("#friends li.friend[data-user='%s']" % C)
    bob.select_option("#lang", "en")
    bob.wait_for_selector("#signout:text-is('Sign out')")
    alice.close()
    bob.close()
    carol.close()


def test_keyboard_only_sign_in_labels_and_shortcuts(browser, federation):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en")
    page = context.new_page()
    page.goto(federation.url("b"))
    for field in ("login", "password"):
        assert page.query_selector("label[for=%s]" % field) is not None
    page.keyboard.type(CAROL)  # the login field has focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORDS.get(CAROL, "demo"))
    page.keyboard.press("Enter")
    page.wait_for_selector("#signout")
    assert "Carol Demo" in page.inner_text("header")
    # The app is not one live region: only the log and the status are.
    assert page.get_attribute("#app", "aria-live") is None
    page.keyboard.press("Alt+k")
    page.wait_for_function("document.activeElement.id === 'chat-filter'")
    if page.query_selector("#conversations li[data-key]"):
        page.keyboard.press("Alt+ArrowDown")
        page.wait_for_selector("section.chat")
        assert page.get_attribute("#messages", "role") == "log"
    context.close()


def test_dark_mode_follows_the_system(browser, federation):
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="en",
                                  color_scheme="dark")
    page = context.new_page()
    page.goto(federation.url("a"))
    page.fill("#login", ALICE)
    page.fill("#password", "demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#signout")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(22, 24, 27)", background
    shot(page, "dark")
    context.close()


def test_a_new_person_is_told_their_lists_are_empty(browser, node_c):
    """A person with no friends and no requests (a new user of node-c) sees that said, and
    where to begin, rather than bare headings."""
    node_c.imfed("user", "add", "13900000005", "--name", "Erin Demo", "--password",
                 "erin-demo", "--config", node_c.config)
    context = browser.new_context(viewport={"width": 1200, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.goto("http://127.0.0.1:%d/" % node_c.client_port)
    page.fill("#login", "13900000005")
    page.fill("#password", "erin-demo")
    page.click("button[type=submit]")
    page.wait_for_selector("#signout")
    page.wait_for_selector("#conversations li.empty:text-is('还没有会话')")
    page.click("#tab-contacts")
    page.wait_for_selector("#friends li.none:text-is('还没有好友：用搜索找人。')")
    assert page.inner_text("#incoming li.none") == "无"
    assert page.inner_text("#outgoing li.none") == "无"
    page.click("#tab-groups")
    page.wait_for_selector("#group-list li.none:text-is('还没有群组：在上方创建一个。')")
    context.close()


def test_deleting_a_friend_asks_first(people):
    alice, bob = people
    befriend(alice, bob)
    alice.click("#tab-contacts")
    alice.click("#friends li.friend[data-user='%s'] button.delete-friend" % B)
    dialog = alice.wait_for_selector(".dialog")
    assert "Bob Demo" in dialog.inner_text()
    alice.click(".dialog button:text-is('Cancel')")
    alice.wait_for_selector(".dialog", state="detached")
    assert [f for f in alice.call("GET", "friends")["body"]["friends"] if f["userID"] == B]


def test_dropped_files_are_sent_and_a_too_large_one_is_not(chatting):
    alice, bob = chatting
    max_bytes = alice.call("GET", "me")["body"]["settings"]["maxFileBytes"]
    drop = """([name, size]) => {
        const file = new File([new Uint8Array(size)], name, {type: "application/octet-stream"});
        const data = new DataTransfer(); data.items.add(file);
        const chat = document.querySelector("section.chat");
        chat.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true,
                                                      cancelable: true}));
        chat.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true,
                                                  cancelable: true}));
    }"""
    alice.evaluate(drop, ["too big.bin", max_bytes + 1])
    note = alice.wait_for_selector("#toasts [role=alert]:has-text('too big.bin')")
    assert "larger than" in note.inner_text()
    alice.evaluate(drop, ["dropped.bin", 2048])
    bob.wait_for_selector(".msg .file:has-text('dropped.bin')")
    assert bob.query_selector(".msg .file:has-text('too big.bin')") is None
    assert alice.query_selector("#drop.hidden") is not None


def test_groups_are_listed_by_their_latest_message(browser, federation):
    alice = page_for(browser, federation, "a", ALICE)
    older = group_of(alice, "older but busy")
    newer = group_of(alice, "newer but quiet")
    alice.call("POST", "groups/%s/messages" % older,
               {"messageType": "text", "content": {"message": "busy now"}})
    alice.reload()
    alice.click("#tab-groups")
    first = alice.wait_for_selector("#group-list li:first-child")
    assert first.get_attribute("data-group") == older
    alice.click("#tab-chats")
    alice.wait_for_selector("#conversations li[data-key='g:%s']" % older)
    rows = alice.eval_on_selector_all("#conversations li[data-key]",
                                      "es => es.map(e => e.dataset.key)")
    assert rows.index("g:" + older) < rows.index("g:" + newer)
    alice.close()


def test_a_notification_names_the_sender(chatting):
    """A message while the page is hidden: a browser notification titled with the sender's
    name (the page's Notification and visibility stood in for: a headless browser shows
    neither)."""
    alice, bob = chatting
    alice.evaluate("""() => {
        window.__shown = [];
        window.Notification = class { constructor(title, options) {
            window.__shown.push([title, options.body]); } };
        window.Notification.permission = "granted";
        Object.defineProperty(document, "hidden", {get: () => true});
    }""")
    alice.click("#tab-contacts")
    send_text(bob, "are you there?")
    alice.wait_for_function("() => window.__shown.length > 0")
    assert alice.evaluate("window.__shown") == [["Bob Demo", "are you there?"]]


def test_a_third_server_stopped_then_back(chatting, node_c, federation):
    """node-c goes away: a message to its user waits as queued, the search names the server
    that did not answer; node-c comes back: the message is sent, nothing typed again."""
    alice, bob = chatting
    dave = "13900000004@node-c"
    deadline = time.monotonic() + 60
    while alice.call("GET", "users/info?userID=" + dave)["status"] != 200:
        assert time.monotonic() < deadline, "node-a never learnt node-c"
        time.sleep(0.5)
    node_c.stop()
    alice.goto(federation.url("a") + "#/chat/u/" + dave)
    alice.wait_for_selector("#compose")
    send_text(alice, "for Dave, while node-c is away")
    alice.wait_for_selector(".msg.mine:has-text('while node-c is away') .state-queued")
    alice.click("#tab-contacts")
    alice.fill("#q", "Dave")
    alice.click("#search button[type=submit]")
    assert "node-c" in alice.wait_for_selector("#silent-servers").inner_text()
    node_c.start()
    alice.goto(federation.url("a") + "#/chat/u/" + dave)
    alice.wait_for_selector(".msg.mine:has-text('while node-c is away') .state-sent",
                            timeout=60000)
