"""The web client's speed in Debian's chromium against the development default (`twistd -n
imfed --port-offset N`): the compressed size of what a first visit downloads; a reload to a
usable conversation list; a conversation of N messages opened and scrolled back to its first
message page by page; a new message from the other server until it shows.  Prints figures;
asserts nothing (docs/webclient.md keeps what it printed)."""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))

from test_webclient import (ALICE, BOB, CHROMIUM, Federation, Person,  # noqa: E402
                            open_chat)


def asset_bytes(base: str) -> tuple[int, int]:
    def get(path):
        request = urllib.request.Request(base + path.lstrip("/"),
                                         headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request) as r:
            return r.read()
    page = get("/")
    text = gzip.decompress(page).decode()
    version = re.search(r"/static/([0-9a-f]+)/main\.js", text).group(1)
    names = ["main.js", "chat.js", "state.js", "api.js", "dom.js", "i18n.js", "contacts.js",
             "groups.js", "app.css"]
    packed = [page, get("/favicon.ico")] + [get("/static/%s/%s" % (version, n)) for n in names]
    plain = sum(len(gzip.decompress(p)) if p[:2] == b"\x1f\x8b" else len(p) for p in packed)
    return sum(len(p) for p in packed), plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--reloads", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    fed = Federation(tempfile.mkdtemp(prefix="imfed-bench-"))
    fed.start()
    try:
        packed, plain = asset_bytes(fed.url("a"))
        print("assets of a first visit: %.1f KB gzipped (%.1f KB as files)"
              % (packed / 1024, plain / 1024))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            alice = Person(browser, fed, "a", ALICE)
            bob = Person(browser, fed, "b", BOB)
            peer_a, peer_b = ALICE + "@node-a", BOB + "@node-b"
            # Friends first: a stranger may send only stranger_messages_per_sender (200).
            alice.call("POST", "friends/requests", {"userID": peer_b, "remark": ""})
            deadline = time.monotonic() + 30
            while not (asked := [r for r in bob.call("GET", "friends/requests")["body"][
                    "requests"] if r["from"] == peer_a]):
                assert time.monotonic() < deadline, "no friend request came"
                time.sleep(0.2)
            bob.call("POST", "friends/requests/%s/answer" % asked[0]["requestID"],
                     {"agree": True})
            while not [f for f in alice.call("GET", "friends")["body"]["friends"]
                       if f["userID"] == peer_b]:
                assert time.monotonic() < deadline, "never friends"
                time.sleep(0.2)
            started = time.monotonic()
            bob.evaluate("""async ([to, n]) => {
                const token = localStorage.getItem("imfed.token");
                for (let i = 0; i < n; i++) {
                  const r = await fetch("/api/v1/messages", {method: "POST", headers: {
                    "Authorization": "Bearer " + token, "Content-Type": "application/json"},
                    body: JSON.stringify({recvID: to, messageType: "text",
                                          content: {message: "history line " + i}})});
                  if (r.status === 429) {  // the sending rate limit: wait as told
                    await new Promise((ok) => setTimeout(ok,
                      1000 * Number(r.headers.get("Retry-After") || 1)));
                    i--;
                  } else if (!r.ok) throw new Error("HTTP " + r.status);
                }
            }""", [peer_a, args.messages])
            deadline = time.monotonic() + 600
            while True:
                have = alice.call("GET", "conversations")["body"]["conversations"]
                if any(c["peerID"] == peer_b and c["messages"] >= args.messages for c in have):
                    break
                assert time.monotonic() < deadline, "the messages never all arrived"
                time.sleep(0.5)
            print("%d messages sent B -> A in %.1f s (setup)"
                  % (args.messages, time.monotonic() - started))
            times = []
            for _ in range(args.reloads):
                alice.reload()
                alice.wait_for_selector("#conversations li[data-key]")
                times.append(alice.evaluate("performance.now()"))
            print("reload to a usable conversation list: median %.0f ms, max %.0f ms (%d runs)"
                  % (statistics.median(times), max(times), len(times)))
            t0 = time.monotonic()
            open_chat(alice, "u:" + peer_b)
            print("open the conversation (newest 50): %.0f ms"
                  % ((time.monotonic() - t0) * 1000))
            pages, t0 = [], time.monotonic()
            while not alice.query_selector(".msg .text:text-is('history line 0')"):
                count = alice.eval_on_selector_all(".msg", "e => e.length")
                p0 = time.monotonic()
                alice.eval_on_selector("#messages", "e => { e.scrollTop = 0; }")
                alice.wait_for_function("(n) => document.querySelectorAll('.msg').length > n",
                                        arg=count, timeout=30000)
                pages.append((time.monotonic() - p0) * 1000)
            print("scrolled back through %d pages to the first message in %.1f s: a page "
                  "median %.0f ms, max %.0f ms (the longest task a page takes, drawn)"
                  % (len(pages), time.monotonic() - t0, statistics.median(pages), max(pages)))
            alice.eval_on_selector("#messages", "e => { e.scrollTop = e.scrollHeight; }")
            lat = []
            for i in range(10):
                alice.evaluate("""(text) => { window.__seen = new Promise((ok) => {
                    const o = new MutationObserver(() => {
                      for (const el of document.querySelectorAll('.msg .text'))
                        if (el.textContent === text) { o.disconnect(); ok(Date.now()); } });
                    o.observe(document.querySelector('#messages'), {childList: true});
                  }); }""", "live %d" % i)
                sent = bob.evaluate("""async ([to, text]) => {
                    const at = Date.now();
                    await fetch("/api/v1/messages", {method: "POST", headers: {
                      "Authorization": "Bearer " + localStorage.getItem("imfed.token"),
                      "Content-Type": "application/json"},
                      body: JSON.stringify({recvID: to, messageType: "text",
                                            content: {message: text}})});
                    return at; }""", [peer_a, "live %d" % i])
                lat.append(alice.evaluate("window.__seen") - sent)
            print("a new message in that %d-message conversation, B's send to shown at A: "
                  "median %.0f ms, max %.0f ms" % (args.messages + 10, statistics.median(lat),
                                                    max(lat)))
            t0 = time.monotonic()
            n = alice.eval_on_selector_all(".msg", "e => e.length")
            alice.evaluate("() => new Promise((ok) => { const e = document.querySelector("
                           "'#messages'); e.scrollTop = 0; requestAnimationFrame(() => { "
                           "e.scrollTop = e.scrollHeight; requestAnimationFrame(ok); }); })")
            print("%d messages on the page: scrolled top to bottom in %.0f ms"
                  % (n, (time.monotonic() - t0) * 1000))
            browser.close()
    finally:
        fed.stop()


if __name__ == "__main__":
    main()
