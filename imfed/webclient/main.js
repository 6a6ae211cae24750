// imfed web client: chat across servers in the browser, on the node's client API
// (docs/client-api.md, docs/groups.md, docs/webclient.md). No build step, no library.
// This module: signing in, the frame (header, tabs, the two panes), the address (#/...) that
// makes Back work, the event stream, notifications and keyboard shortcuts.
"use strict";

import { api, session } from "./api.js";
import { renderChat, renderList, searchMessages, closeChat, cancelReply, personAvatar } from "./chat.js";
import { renderContacts } from "./contacts.js";
import { $, h, toast } from "./dom.js";
import { renderGroups } from "./groups.js";
import { errorText, i18n, setLang, t } from "./i18n.js";
import { convKey, emit, handle, loadAll, markRead, nameOf, flags, on, preview, state, title,
         touchConv, unreadTotal } from "./state.js";

const app = $("#app");
let teardown = [];
let polling = null;

// -- signing in and out --

function renderSignIn(error) {
  const typed = $("#login") ? $("#login").value : "";
  app.replaceChildren(h("main", { class: "signin" },
    h("h1", {}, h("img", { src: "/favicon.ico", alt: "", class: "logo" }), "imfed"),
    h("form", { id: "signin", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("POST", "login", { login: $("#login").value, password: $("#password").value });
        session.token = r.token; localStorage.setItem("imfed.token", r.token);
        await start();
      } catch (err) { renderSignIn(err.status === 401 ? t("badLogin") : errorText(err)); }
    } },
      h("label", { for: "login" }, t("login")),
      h("input", { id: "login", name: "login", autocomplete: "username", required: true, value: typed }),
      h("label", { for: "password" }, t("password")),
      h("input", { id: "password", name: "password", type: "password",
                   autocomplete: "current-password", required: true }),
      error ? h("p", { class: "error", role: "alert" }, error) : null,
      h("button", { class: "primary", type: "submit" }, t("signIn"))),
    languageSwitch()),
    h("div", { id: "toasts", class: "toasts" }));
  (typed ? $("#password") : $("#login")).focus();
}

function languageSwitch() {
  return h("label", { class: "muted lang" }, h("span", { class: "lang-word" }, t("language") + " "),
    h("select", { id: "lang", onchange: (e) => {
      setLang(e.target.value);
      state.me ? frame() : renderSignIn();
    } }, ...[["en", "English"], ["zh", "中文"]].map(([v, n]) =>
      h("option", { value: v, selected: i18n.lang === v }, n))));
}

function signedOut() {
  session.token = null; state.me = null; localStorage.removeItem("imfed.token");
  if (polling) { polling.abort(); polling = null; }
  teardown.forEach((f) => f()); teardown = [];
  closeChat();
  renderSignIn();
}
session.onSignedOut = signedOut;

async function signOut() {
  try { await api("POST", "logout"); } catch (e) { /* gone already */ }
  signedOut();
}

// -- the frame --

function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function parse() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { view: parts[0] || "chats", a: parts[1], b: parts[2] };
}

function frame() {
  teardown.forEach((f) => f()); teardown = [];
  closeChat();
  const tabs = ["chats", "contacts", "groups"];
  app.replaceChildren(
    h("header", {},
      h("h1", {}, h("img", { src: "/favicon.ico", alt: "", class: "logo" }), h("span", { class: "brand" }, "imfed")),
      h("nav", { class: "tabs", "aria-label": "imfed" }, ...tabs.map((tab) =>
        h("a", { href: "#/" + tab, id: "tab-" + tab, class: "tab" },
          t(tab), tab === "chats" ? h("span", { id: "unread-total", class: "badge hidden" }) : null))),
      h("form", { class: "msg-search", role: "search", onsubmit: (e) => {
        e.preventDefault(); const q = $("#message-search").value.trim(); if (q) go("#/search/" + encodeURIComponent(q)); } },
        h("input", { id: "message-search", type: "search", placeholder: t("searchMessages"), "aria-label": t("searchMessages") })),
      h("span", { id: "live", class: "status" + (state.live ? "" : " down"), role: "status" },
        state.live ? t("connected") : t("reconnecting")),
      h("a", { href: "#/contacts", class: "me", id: "me", title: state.me.userID }, personAvatar({ kind: "u", id: state.me.userID }),
        h("span", { class: "me-name" }, state.me.name)),
      "Notification" in window && Notification.permission === "default" ?
        h("button", { id: "notify", class: "icon", title: t("notify"), "aria-label": t("notify"),
                      onclick: (e) => { Notification.requestPermission(); e.currentTarget.remove(); } }, "🔔") : null,
      languageSwitch(),
      h("button", { id: "signout", onclick: signOut }, t("signOut"))),
    h("div", { class: "layout", id: "layout" },
      h("div", { class: "pane side", id: "side" }),
      h("main", { class: "pane main", id: "main" })),
    h("div", { id: "toasts", class: "toasts" }));
  teardown.push(on("total", updateTitle), on("conv", updateTitle),
                on("me", () => { const n = $(".me-name"); if (n) n.textContent = state.me.name; }));
  shownView = null;
  route();
}

let shownView = null, sideOff = null;

function route() {
  if (!state.me) return;
  const { view, a, b } = parse();
  const layout = $("#layout");
  if (!layout) return;
  const side = $("#side"), main = $("#main");
  const tab = view === "chat" || view === "search" ? "chats" : view === "group" ? "groups" : view;
  for (const x of document.querySelectorAll(".tabs .tab"))
    x.setAttribute("aria-current", x.id === "tab-" + tab ? "page" : "false");
  // The side pane is drawn when its tab changes, not on every route within it.
  if (shownView !== tab || tab === "groups") {
    if (sideOff) sideOff();
    closeChat();
    if (tab === "chats") sideOff = renderList(side, go);
    else if (tab === "contacts") sideOff = renderContacts(side, main, go);
    else sideOff = renderGroups(side, main, go, view === "group" ? a : null);
    shownView = tab;
  }
  state.openKey = null;
  let open = false;
  if (view === "chat" && (a === "u" || a === "g") && b) {
    const key = convKey(a, b);
    if (!state.convs.has(key)) touchConv(a, b);
    state.openKey = key;
    renderChat(main, key, go);
    open = true;
  } else if (view === "search" && a) {
    searchMessages(main, a, go); open = true;
  } else if (view === "group" && a) {
    open = true;
  } else if (tab === "chats") {
    closeChat();
    main.replaceChildren(h("p", { class: "empty" }, t("pick"), h("br"), h("small", { class: "muted" }, t("shortcuts"))));
  } else if (tab === "contacts") open = false;
  layout.classList.toggle("open", open);
  layout.classList.toggle("stack", tab === "contacts");
  emit("open");
  updateTitle();
}

function updateTitle() {
  const n = unreadTotal();
  document.title = (n ? "(" + n + ") " : "") + "imfed";
  const badge = $("#unread-total");
  if (badge) { badge.textContent = n ? String(n) : ""; badge.classList.toggle("hidden", !n); }
}

// -- events: long poll, resumed from the last seq, reconnecting by itself --

async function poll() {
  // The first ask (and the first after a failure) does not wait: the page knows at once
  // that it is live again; then each ask waits up to 25 s for the next event.
  let delay = 500, wait = 0;
  while (session.token) {
    const controller = new AbortController();
    polling = controller;
    try {
      const url = new URL("/api/v1/events", location.origin);
      url.searchParams.set("since", state.since); url.searchParams.set("wait", String(wait));
      const response = await fetch(url, { headers: { Authorization: "Bearer " + session.token },
                                          signal: controller.signal, credentials: "omit" });
      if (response.status === 401) { signedOut(); return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const r = await response.json();
      setLive(true); delay = 500; wait = 25;
      for (const ev of r.events) handle(ev);
      state.since = r.last;
    } catch (e) {
      if (controller.signal.aborted) return;
      setLive(false); wait = 0;
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

function setLive(live) {
  if (state.live === live) return;
  state.live = live;
  const el = $("#live");
  if (el) { el.textContent = live ? t("connected") : t("reconnecting"); el.classList.toggle("down", !live); }
}

on("notify", ({ key, m, request, invitation }) => {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  if (request) { new Notification(nameOf(request.from), { body: t("sentRequest") }); return; }
  if (invitation) { new Notification(t("invitations"), { body: invitation.groupInfo.groupName }); return; }
  if (key && flags(key).muted) return;
  const c = state.convs.get(key);
  const who = nameOf(m.messageInfo.senderID);
  new Notification(c && c.kind === "g" ? title(c) : who,
                   { body: (c && c.kind === "g" ? who + ": " : "") + preview(m), tag: key });
});

document.addEventListener("visibilitychange", () => {
  state.visible = !document.hidden;
  if (state.visible && state.openKey) markRead(state.openKey);
});

// -- keyboard --

document.addEventListener("keydown", (e) => {
  if (!state.me) return;
  if (e.altKey && (e.key === "k" || e.key === "K")) {
    e.preventDefault();
    if (parse().view !== "chats" && parse().view !== "chat") go("#/chats");
    setTimeout(() => { const f = $("#chat-filter"); if (f) f.focus(); }, 0);
  } else if (e.altKey && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
    e.preventDefault();
    const rows = [...document.querySelectorAll("#conversations li[data-key]")];
    if (!rows.length) return;
    const i = rows.findIndex((r) => r.dataset.key === state.openKey);
    const next = rows[(i + (e.key === "ArrowDown" ? 1 : rows.length - 1) + (i < 0 && e.key === "ArrowUp" ? 1 : 0)) % rows.length];
    next.click();
  } else if (e.key === "Escape") {
    cancelReply();
    const grid = $("#emoji-grid");
    if (grid) grid.classList.add("hidden");
  }
});

window.addEventListener("hashchange", route);

// -- start --

async function start() {
  try { await loadAll(); }
  catch (e) { if (session.token) renderSignIn(e.status === 401 ? null : errorText(e)); return; }
  frame();
  poll();
}

setLang(i18n.lang);
if (session.token) start(); else renderSignIn();
