// The conversation list and a conversation: messages drawn once each and changed in place,
// date lines, replies, @mentions, emoji, drafts, files by picking, dropping or pasting.
"use strict";

import { api, enc, fetchFile, newTxnId, portrait, upload, ApiError } from "./api.js";
import { $, avatar, confirmAction, dialog, h, richText, toast } from "./dom.js";
import { clock, dayLabel, errorText, shortTime, size, t } from "./i18n.js";
import { askNames, draft, emit, flags, groupDetails, loadMessages, markRead, mentionsMe,
         msgId, nameOf, on, order, preview, setDraft, setFlag, sortedConvs, state, title } from "./state.js";

const EMOJI = "😀 😁 😂 🤣 😊 😍 😘 😎 🤔 😅 😭 😡 👍 👎 👏 🙏 💪 🤝 👌 ✌️ 🎉 ❤️ 💔 🔥 ⭐ ✅ ❌ ☕ 🍵 🍚 🌹 🎂 🧧 ☀️ 🌙 💡 📎 📅 ⏰".split(" ");

// -- the list --

export function renderList(side, go) {
  const list = h("ul", { class: "list", id: "conversations", "aria-label": t("chats") });
  // Typing narrows the list; Enter (or the button under it) searches the messages themselves.
  const filter = h("input", { id: "chat-filter", type: "search", placeholder: t("filterChats"),
                              "aria-label": t("filterChats"), oninput: () => fill(),
                              onkeydown: (e) => { if (e.key === "Enter" && filter.value.trim())
                                go("#/search/" + encodeURIComponent(filter.value.trim())); } });
  // What was typed, looked for in the messages too: a button under the filter (the way on a
  // phone, where the header's search is not shown).
  const more = h("button", { type: "button", class: "search-more", hidden: true,
                             onclick: () => go("#/search/" + encodeURIComponent(filter.value.trim())) });
  const rows = new Map();
  const fill = () => {
    const q = filter.value.trim().toLowerCase();
    more.hidden = !q; more.textContent = q ? t("searchFor", { q: filter.value.trim() }) : "";
    const shown = sortedConvs().filter((c) => !q || title(c).toLowerCase().includes(q) ||
                                         c.id.toLowerCase().includes(q));
    if (!shown.length) { list.replaceChildren(h("li", { class: "empty" }, t(q ? "noResults" : "noChats"))); rows.clear(); return; }
    const items = shown.map((c) => { let li = rows.get(c.key); if (!li) { li = row(c, go); rows.set(c.key, li); } return li; });
    // Moved, not made again: a row keeps its focus and its picture.
    items.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
    while (list.children.length > items.length) list.lastChild.remove();
  };
  const update = (key) => {
    const c = state.convs.get(key);
    const old = rows.get(key);
    if (c && old) { const li = row(c, go); old.replaceWith(li); rows.set(key, li); }
    fill();
  };
  side.replaceChildren(h("div", { class: "list-head" }, filter, more), list);
  fill();
  const offs = [on("conv", update), on("name", () => { rows.clear(); list.replaceChildren(); fill(); }),
                on("open", () => rows.forEach((li, key) => li.classList.toggle("active", key === state.openKey)))];
  return () => offs.forEach((off) => off());
}

function row(c, go) {
  const f = flags(c.key);
  const last = c.last;
  let text = preview(last);
  if (last && c.kind === "g" && !last.recalled && last.messageInfo && last.messageInfo.senderID)
    text = nameOf(last.messageInfo.senderID) + ": " + text;
  const d = draft(c.key);
  const li = h("li", { class: "conv" + (state.openKey === c.key ? " active" : "") + (c.gone ? " gone" : ""),
                       tabindex: "0", "data-key": c.key, role: "link",
                       "aria-label": title(c) + (c.unread ? ", " + c.unread : ""),
                       onclick: () => go("#/chat/" + c.kind + "/" + enc(c.id)),
                       onkeydown: (e) => { if (e.key === "Enter") go("#/chat/" + c.kind + "/" + enc(c.id)); } },
    personAvatar(c),
    h("div", { class: "conv-body" },
      h("div", { class: "title" }, h("span", { class: "name" }, title(c)),
        h("span", { class: "time" }, shortTime(c.time))),
      h("div", { class: "preview" },
        c.unread && last && mentionsMe(last) ? h("span", { class: "at" }, "[@] ") : null,
        d ? h("span", { class: "draft" }, "[" + t("message") + "] " + d) : text,
        h("span", { class: "flags" }, f.pinned ? h("span", { title: t("pinned"), class: "pin" }, "📌") : null,
          f.muted ? h("span", { title: t("muted"), class: "mute" }, "🔕") : null,
          c.unread ? h("span", { class: "badge" + (f.muted ? " quiet" : "") }, String(c.unread)) : null))));
  return li;
}

export function personAvatar(c) {
  if (c.kind === "g") return avatar(c.id, c.title || "#", null, false, true);
  const el = avatar(c.id, nameOf(c.id), null);
  portrait(c.id).then((url) => { if (url) el.append(h("img", { alt: "", src: url })); });
  return el;
}

// -- one conversation --

let current = null;  // {key, el, list, stop}

export function closeChat() { if (current) { current.stop(); current = null; } }

export async function renderChat(main, key, go) {
  closeChat();
  const c = state.convs.get(key);
  const list = h("div", { class: "messages", id: "messages", role: "log", "aria-live": "polite",
                          "aria-label": title(c), tabindex: "0" });
  const headTitle = h("h2", { id: "chat-title" }, title(c));
  const sub = h("span", { class: "muted", id: "chat-sub" });
  // Pin and mute: the buttons show what the server keeps (changed here or on another device).
  const toggle = (flag) => setFlag(key, flag, !flags(key)[flag]).catch((e) => toast(errorText(e), true));
  const pinBtn = h("button", { class: "icon", id: "pin", onclick: () => toggle("pinned") });
  const muteBtn = h("button", { class: "icon", id: "mute", onclick: () => toggle("muted") });
  const showFlags = () => {
    const f = flags(key);
    const show = (btn, on, icon, label) => {
      btn.setAttribute("aria-pressed", String(on)); btn.setAttribute("aria-label", label); btn.title = label;
      btn.replaceChildren(h("span", { class: "ico", "aria-hidden": "true" }, icon), h("span", { class: "label" }, label));
    };
    show(pinBtn, !!f.pinned, "📌", t(f.pinned ? "unpin" : "pin"));
    show(muteBtn, !!f.muted, f.muted ? "🔕" : "🔔", t(f.muted ? "unmute" : "mute"));
  };
  showFlags();
  const head = h("div", { class: "head" },
    h("button", { class: "back", id: "back", "aria-label": t("back"), onclick: () => history.back() }, "‹"),
    personAvatar(c), h("div", { class: "head-title" }, headTitle, sub),
    h("div", { class: "head-actions" }, pinBtn, muteBtn,
      c.kind === "g" ? h("button", { id: "group-settings", onclick: () => go("#/group/" + enc(c.id)) }, t("members")) : null));
  const notice = h("div", { class: "notice hidden", id: "announcement", role: "note" });
  const composer = h("div", { class: "compose-wrap" });
  const section = h("section", { class: "chat", "data-key": key, "aria-label": title(c) },
    head, notice, list, composer, h("div", { class: "drop hidden", id: "drop" }, t("dropHere")));
  main.replaceChildren(section);
  const me = { key, el: section, list, stop: () => {} };
  current = me;

  const offs = [];
  const shown = new Map();  // messageID -> element
  let lastDay = null, firstDay = null;
  const atEnd = () => list.scrollTop + list.clientHeight >= list.scrollHeight - 30;

  const place = (m, where) => {
    const el = m.system ? h("div", { class: "system", "data-id": msgId(m) }, m.text) : renderMessage(c, m);
    shown.set(msgId(m), el);
    const day = m.createTime ? new Date(m.createTime).toDateString() : null;
    if (where === "end") {
      if (day && day !== lastDay) list.append(h("div", { class: "day", role: "separator" }, dayLabel(m.createTime)));
      if (day) lastDay = day;
      if (!firstDay) firstDay = day;
      list.append(el);
    }
    return el;
  };

  // Where one had read to when the chat opened: a line above the first message after it,
  // and the chat opens there (not at the bottom) when more came than the screen shows.
  const readAt = c.unread ? c.read : null;
  const drawAll = () => {
    const b = state.messages.get(key) || { items: [] };
    list.replaceChildren(); shown.clear(); lastDay = null; firstDay = null;
    if (b.nextBefore) list.append(h("button", { class: "older", id: "older", onclick: older }, t("older")));
    let line = null;
    for (const m of b.items) {
      const el = place(m, "end");
      if (readAt !== null && !line && !m.system && m.messageInfo.senderID !== state.me.userID &&
          order(m) > readAt) {
        line = h("div", { class: "unread-line", role: "separator" }, t("newMessages"));
        el.before(line);
      }
    }
    list.scrollTop = line ? Math.min(list.scrollHeight,
      line.getBoundingClientRect().top - list.getBoundingClientRect().top + list.scrollTop - 8)
      : list.scrollHeight;
  };

  let loadingOlder = false;
  async function older() {
    if (loadingOlder) return;
    loadingOlder = true;
    try {
      const height = list.scrollHeight, top = list.scrollTop;
      const page = await loadMessages(key, true);
      if (current !== me) return;
      const b = state.messages.get(key);
      const frag = document.createDocumentFragment();
      let day = null;
      for (const m of page) {
        const d = m.createTime ? new Date(m.createTime).toDateString() : null;
        if (d && d !== day) frag.append(h("div", { class: "day", role: "separator" }, dayLabel(m.createTime)));
        day = d;
        const el = m.system ? h("div", { class: "system" }, m.text) : renderMessage(c, m);
        shown.set(msgId(m), el); frag.append(el);
      }
      // The day line of the first message already shown goes if the page ends on that day.
      const button = $("#older", list);
      if (button) button.remove();
      const firstLine = list.querySelector(".day");
      if (firstLine && day && firstLine.textContent === dayLabel(page[page.length - 1].createTime)) firstLine.remove();
      list.prepend(frag);
      if (b.nextBefore) list.prepend(h("button", { class: "older", id: "older", onclick: older }, t("older")));
      list.scrollTop = list.scrollHeight - height + top;
    } catch (e) { toast(errorText(e), true); } finally { loadingOlder = false; }
  }
  list.addEventListener("scroll", () => { if (list.scrollTop < 40) older(); });

  offs.push(on("msg", ({ key: k, m, op }) => {
    if (k !== key || current !== me) return;
    const old = shown.get(msgId(m));
    if (op === "update" && old) {
      const el = m.system ? old : renderMessage(c, m);
      old.replaceWith(el); shown.set(msgId(m), el);
      return;
    }
    if (old) return;
    const end = atEnd();
    place(m, "end");
    if (end || (m.messageInfo && m.messageInfo.senderID === state.me.userID)) list.scrollTop = list.scrollHeight;
    if (state.visible) markRead(key);
  }));
  offs.push(on("conv", (k) => {
    if (k !== key || current !== me) return;
    headTitle.textContent = title(c);
    if (c.gone) drawComposer();
  }));
  offs.push(on("name", (id) => { if (c.kind === "u" && id === c.id) headTitle.textContent = title(c); }));
  offs.push(on("flags", (k) => { if (k === key) showFlags(); }));
  offs.push(on("group", (gid) => { if (c.kind === "g" && gid === c.id) groupHeader(true); }));
  me.stop = () => offs.forEach((off) => off());

  async function groupHeader(fresh) {
    if (c.kind !== "g" || c.gone) { sub.textContent = ""; return; }
    try {
      const g = await groupDetails(c.id, fresh);
      if (current !== me) return;
      headTitle.textContent = g.name;
      sub.textContent = g.info.groupMemberNum + " " + t("members");
      if (g.notice && g.notice.text) {
        notice.replaceChildren(h("strong", {}, t("announcement") + " "), ...richText(g.notice.text));
        notice.classList.remove("hidden");
      } else notice.classList.add("hidden");
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 403)) { c.gone = e.status === 404 ? "dissolved" : "removed"; drawComposer(); }
    }
  }

  function drawComposer() {
    if (c.gone) {
      composer.replaceChildren(h("p", { class: "gone", role: "status" },
        c.gone === "dissolved" ? t("goneDissolved") : t("goneRemoved")));
      return;
    }
    composer.replaceChildren(compose(c, section));
  }

  drawComposer();
  groupHeader(false);
  list.append(h("p", { class: "loading" }, "…"));
  try { await loadMessages(key, false); }
  catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 403) && c.kind === "g") {
      c.gone = e.status === 404 ? "dissolved" : "removed"; drawComposer();
    } else toast(errorText(e), true);
  }
  if (current !== me) return;
  drawAll();
  if (state.visible) markRead(key);
  const box = $("#compose", section);
  if (box && window.matchMedia("(min-width: 701px)").matches) box.focus();
}

// -- a message --

function quoteParts(text) {
  // A reply is carried as plain text (a line "> name: excerpt", then the answer): any
  // server and client of the standard shows it as it reads.
  const m = /^> ([^\n]{1,200})\n([\s\S]*)$/.exec(text);
  return m ? { quote: m[1], rest: m[2] } : null;
}

function renderMessage(c, m) {
  const info = m.messageInfo, mine = info.senderID === state.me.userID;
  const content = info.content || {};
  const recalled = m.recalled || info.messageType === "repeal";
  let body;
  if (recalled) body = h("span", { class: "recalled-text" }, mine ? t("recalled") : t("recalledBy", { name: nameOf(info.senderID) }));
  else if (info.messageType === "text") {
    const text = content.message || "";
    const q = quoteParts(text);
    const names = c.kind === "g" ? memberNames(c.id) : null;
    body = h("div", { class: "text" },
      q ? h("blockquote", {}, q.quote) : null,
      ...richText(q ? q.rest : text, names, state.me.name));
  } else if (info.messageType === "image") {
    const img = h("img", { alt: content.name || t("image"), "data-file": content.fileID, tabindex: "0",
                           onclick: () => viewImage(img), onkeydown: (e) => { if (e.key === "Enter") viewImage(img); } });
    fetchFile(content.fileID).then((f) => { img.src = f.url; }).catch(() => { img.alt = t("failed"); });
    body = img;
  } else if (info.messageType === "voice") {
    const audio = h("audio", { controls: true, "data-file": content.fileID, preload: "none" });
    fetchFile(content.fileID).then((f) => { audio.src = f.url; }).catch(() => {});
    body = h("span", { class: "voice-msg" }, audio, " " + (content.duration || "?") + "″");
  } else {
    const bar = h("progress", { max: "1", value: "0", class: "hidden" });
    body = h("span", { class: "file" }, "📄 " + (content.name || t("file")) + " (" + size(content.size || 0) + ") ",
      h("button", { class: "download", "data-file": content.fileID, onclick: async () => {
        bar.classList.remove("hidden");
        try {
          const f = await fetchFile(content.fileID, (p) => { bar.value = p; });
          const a = h("a", { href: f.url, download: content.name || "file" });
          document.body.append(a); a.click(); a.remove();
        } catch (e) { toast(errorText(e), true); }
        bar.classList.add("hidden");
      } }, t("download")), bar);
  }
  const meta = h("div", { class: "meta" });
  if (m.createTime) meta.append(h("time", { datetime: new Date(m.createTime).toISOString() }, clock(m.createTime)));
  if (mine && m.state && m.state !== "received" && !recalled && c.kind === "u") {
    meta.append(h("span", { class: "state state-" + m.state }, t(m.state)));
    if (m.state === "failed")
      meta.append(h("button", { class: "retry", onclick: () => sendContent(c, info.messageType, content).catch((e) => toast(errorText(e), true)) }, t("retry")));
  }
  const actions = h("span", { class: "actions" });
  if (!recalled && !m.pending) {
    actions.append(h("button", { class: "reply", onclick: () => startReply(c, m) }, t("reply")),
                   h("button", { class: "forward", onclick: () => forward(m) }, t("forward")));
    if (canRecall(c, m)) actions.append(h("button", { class: "recall", onclick: async () => {
      if (!(await confirmAction(t("confirmRecall"), t("recall")))) return;
      const path = c.kind === "u" ? "messages/" + enc(msgId(m)) + "/recall"
        : "groups/" + enc(c.id) + "/messages/" + enc(msgId(m)) + "/recall";
      try { await api("POST", path); } catch (e) { toast(errorText(e), true); }
    } }, t("recall")));
  }
  meta.append(actions);
  const mention = !mine && !recalled && mentionsMe(m);
  const el = h("div", { class: "msg" + (mine ? " mine" : "") + (recalled ? " recalled" : "") + (mention ? " mentioned" : ""),
                        "data-id": msgId(m) },
    !mine && c.kind === "g" ? avatarFor(info.senderID) : null,
    h("div", { class: "bubble" },
      !mine && c.kind === "g" ? h("div", { class: "sender" }, nameOf(info.senderID)) : null,
      body, meta));
  return el;
}

function avatarFor(userID) {
  const el = avatar(userID, nameOf(userID), null, true);
  portrait(userID).then((url) => { if (url) el.append(h("img", { alt: "", src: url })); });
  return el;
}

function memberNames(gid) {
  const g = state.groups.get(gid);
  return g ? g.members.map((x) => x.userInfo.name).filter(Boolean).sort((a, b) => b.length - a.length) : null;
}

function canRecall(c, m) {
  const mine = m.messageInfo.senderID === state.me.userID;
  const window_ = (state.settings.recallWindowSeconds || 120) * 1000;
  if (mine && Date.now() - (m.createTime || 0) < window_) return true;
  if (c.kind === "g") {
    const g = state.groups.get(c.id);
    return !!(g && g.myRole >= 2);
  }
  return false;
}

function viewImage(img) {
  if (!img.src) return;
  const big = h("img", { src: img.src, alt: img.alt, class: "full" });
  dialog(img.alt || t("viewer"), big, [[t("close"), null]]);
}

// -- replies, forwarding --

let replyTo = null;

function startReply(c, m) {
  const info = m.messageInfo;
  const excerpt = info.messageType === "text" ? ((quoteParts(info.content.message || "") || {}).rest ?? info.content.message) : preview(m);
  replyTo = { key: c.key, line: nameOf(info.senderID) + ": " + excerpt.replace(/\s+/g, " ").slice(0, 60) };
  const bar = $("#reply-bar");
  if (bar) {
    bar.replaceChildren(h("span", {}, t("reply") + " · " + replyTo.line),
      h("button", { class: "icon", "aria-label": t("cancel"), onclick: cancelReply }, "✕"));
    bar.classList.remove("hidden");
  }
  const box = $("#compose");
  if (box) box.focus();
}

export function cancelReply() {
  replyTo = null;
  const bar = $("#reply-bar");
  if (bar) { bar.classList.add("hidden"); bar.replaceChildren(); }
}

async function forward(m) {
  const choices = sortedConvs().filter((c) => !c.gone);
  const list = h("ul", { class: "list pick" }, ...choices.map((c) =>
    h("li", {}, h("button", { class: "pick-conv", "data-key": c.key, onclick: (e) => e.target.closest(".dialog")._close(c.key) },
      title(c)))));
  const key = await dialog(t("forwardTo"), list, [[t("cancel"), null]]);
  if (!key) return;
  const target = state.convs.get(key), info = m.messageInfo, content = info.content || {};
  try {
    if (info.messageType === "text") await sendContent(target, "text", { message: content.message });
    else {
      // Another's file is sent on as an upload of one's own (the API takes only those).
      let fileID = content.fileID;
      if (info.senderID !== state.me.userID) {
        const f = await fetchFile(content.fileID);
        fileID = (await upload(new File([f.blob], content.name || "file", { type: f.blob.type }))).fileID;
      }
      const out = { fileID };
      if (info.messageType === "voice") out.duration = content.duration || 1;
      await sendContent(target, info.messageType, out);
    }
    toast(t("sent") || "✓");
  } catch (e) { toast(errorText(e), true); }
}

// -- sending --

export async function sendContent(c, type, content) {
  // One txnId per message: sent again after a broken connection, it is sent once
  // (docs/client-api.md, idempotent sends).
  const txnId = newTxnId();
  const send = () => c.kind === "u"
    ? api("POST", "messages", { recvID: c.id, messageType: type, content, txnId })
    : api("POST", "groups/" + enc(c.id) + "/messages", { messageType: type, content, txnId });
  let r;
  try { r = await send(); } catch (e) {
    if (e.status) throw e;  // answered: not a broken connection
    r = await send();
  }
  return r;
}

async function sendFiles(c, files, progress) {
  const max = state.settings.maxFileBytes || Infinity;
  for (const file of files) {
    if (file.size > max) { toast(t("tooBig", { name: file.name, max: size(max) }), true); continue; }
    progress.classList.remove("hidden"); progress.value = 0;
    try {
      const up = await upload(file, (p) => { progress.value = p; });
      await sendContent(c, file.type.startsWith("image/") ? "image" : "file", { fileID: up.fileID });
    } catch (e) { toast(t("uploadFailed") + ": " + errorText(e), true); }
    progress.classList.add("hidden");
  }
}

function compose(c, section) {
  const progress = h("progress", { max: "1", value: "0", class: "hidden", id: "upload-progress", "aria-label": t("attach") });
  const text = h("textarea", { id: "compose", "aria-label": t("message"), placeholder: t("message"), rows: "1" });
  text.value = draft(c.key);
  const picker = h("ul", { class: "mention-picker hidden", id: "mention-picker", role: "listbox" });
  const emojis = h("div", { class: "emoji-grid hidden", id: "emoji-grid", role: "group", "aria-label": t("emoji") },
    ...EMOJI.map((e) => h("button", { class: "emoji", type: "button", onclick: () => { insert(e); emojis.classList.add("hidden"); } }, e)));
  const insert = (s) => {
    const at = text.selectionStart ?? text.value.length;
    text.value = text.value.slice(0, at) + s + text.value.slice(text.selectionEnd ?? at);
    text.selectionStart = text.selectionEnd = at + s.length;
    text.focus(); setDraft(c.key, text.value);
  };
  const send = async () => {
    const value = text.value;
    if (!value.trim()) return;
    const message = replyTo && replyTo.key === c.key ? "> " + replyTo.line + "\n" + value : value;
    text.disabled = true;
    try {
      await sendContent(c, "text", { message });
      // Cleared only once the server has it: a failed send keeps what was typed.
      text.value = ""; setDraft(c.key, ""); cancelReply(); emit("conv", c.key);
    } catch (e) { toast(errorText(e), true); }
    text.disabled = false; text.focus();
  };
  text.addEventListener("keydown", (e) => {
    if (!picker.classList.contains("hidden") && (e.key === "ArrowDown" || e.key === "ArrowUp" || e.key === "Enter" || e.key === "Escape")) {
      const items = [...picker.children], i = items.findIndex((x) => x.getAttribute("aria-selected") === "true");
      e.preventDefault();
      if (e.key === "Escape") { picker.classList.add("hidden"); return; }
      if (e.key === "Enter") { if (items[i]) items[i].click(); return; }
      const j = (i + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      items.forEach((x, k) => x.setAttribute("aria-selected", String(k === j)));
      return;
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
    if (e.key === "Escape") cancelReply();
  });
  let saving = null;
  text.addEventListener("input", () => {
    clearTimeout(saving);
    saving = setTimeout(() => { setDraft(c.key, text.value); emit("conv", c.key); }, 300);
    if (c.kind === "g") mentionPicker(c, text, picker);
  });
  text.addEventListener("paste", (e) => {
    const files = [...(e.clipboardData || {}).files || []];
    if (files.length) { e.preventDefault(); sendFiles(c, files, progress); }
  });
  const drop = $("#drop", section);
  section.addEventListener("dragover", (e) => { if ([...e.dataTransfer.types].includes("Files")) { e.preventDefault(); drop.classList.remove("hidden"); } });
  section.addEventListener("dragleave", (e) => { if (e.target === drop) drop.classList.add("hidden"); });
  section.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.add("hidden");
    const files = [...e.dataTransfer.files];
    if (files.length) sendFiles(c, files, progress);
  });
  const fileInput = h("input", { type: "file", id: "attach", class: "visually-hidden", multiple: true,
    onchange: async (e) => { await sendFiles(c, [...e.target.files], progress); e.target.value = ""; } });
  return h("div", { class: "compose-area" },
    h("div", { class: "reply-bar hidden", id: "reply-bar", role: "status" }),
    picker, emojis,
    h("div", { class: "compose" },
      h("button", { class: "icon", id: "emoji", type: "button", "aria-label": t("emoji"), "aria-expanded": "false",
                    onclick: (e) => { emojis.classList.toggle("hidden"); e.currentTarget.setAttribute("aria-expanded", String(!emojis.classList.contains("hidden"))); } }, "☺"),
      h("label", { class: "icon attach-label", for: "attach", title: t("attach") }, "📎", h("span", { class: "visually-hidden" }, t("attach"))),
      fileInput, voiceButton(c), text,
      h("button", { class: "primary", id: "send", onclick: send }, t("send")), progress));
}

function mentionPicker(c, text, picker) {
  const before = text.value.slice(0, text.selectionStart);
  const m = /(^|\s)@([^\s@]{0,20})$/.exec(before);
  const g = state.groups.get(c.id);
  if (!m || !g) { picker.classList.add("hidden"); return; }
  const q = m[2].toLowerCase();
  const found = g.members.filter((x) => x.userInfo.userID !== state.me.userID &&
    (x.userInfo.name || "").toLowerCase().includes(q)).slice(0, 8);
  if (!found.length) { picker.classList.add("hidden"); return; }
  picker.replaceChildren(...found.map((x, i) => h("li", { role: "option", "aria-selected": String(i === 0),
    "data-user": x.userInfo.userID, onmousedown: (e) => e.preventDefault(), onclick: () => {
      const start = before.length - m[2].length;
      text.value = text.value.slice(0, start) + x.userInfo.name + " " + text.value.slice(text.selectionStart);
      text.selectionStart = text.selectionEnd = start + x.userInfo.name.length + 1;
      picker.classList.add("hidden"); text.focus(); setDraft(c.key, text.value);
    } }, avatar(x.userInfo.userID, x.userInfo.name, null, true), x.userInfo.name)));
  picker.classList.remove("hidden");
}

function voiceButton(c) {
  if (!window.MediaRecorder || !navigator.mediaDevices) return null;
  let recorder = null, started = 0;
  const button = h("button", { class: "icon voice", type: "button", "aria-label": t("voice"), onclick: async () => {
    if (recorder) { recorder.stop(); return; }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const chunks = [];
      recorder = new MediaRecorder(stream);
      recorder.ondataavailable = (e) => chunks.push(e.data);
      recorder.onstop = async () => {
        stream.getTracks().forEach((tr) => tr.stop());
        const blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
        const seconds = Math.max(1, Math.round((Date.now() - started) / 1000));
        recorder = null; button.textContent = "🎤";
        try {
          const up = await upload(new File([blob], "voice.webm", { type: blob.type }));
          await sendContent(c, "voice", { fileID: up.fileID, duration: seconds });
        } catch (e) { toast(errorText(e), true); }
      };
      started = Date.now(); recorder.start(); button.textContent = "■";
    } catch (e) { toast(t("voice") + ": " + (e.message || ""), true); }
  } }, "🎤");
  return button;
}

// -- message search --

export async function searchMessages(main, q, go) {
  closeChat();
  const out = h("ul", { class: "list results", id: "message-results" });
  main.replaceChildren(h("div", { class: "panel" }, h("h2", {}, t("searchMessages") + ": " + q), out));
  try {
    const r = await api("GET", "messages/search", undefined, { q, limit: 50 });
    const all = r.messages.map((m) => ({ m, kind: "u", id: m.messageInfo.senderID === state.me.userID ? m.messageInfo.recvID : m.messageInfo.senderID }))
      .concat(r.groupMessages.map((m) => ({ m, kind: "g", id: m.groupID || m.messageInfo.recvID })))
      .sort((a, b) => b.m.createTime - a.m.createTime);
    askNames(all.map((x) => x.m.messageInfo.senderID));
    if (!all.length) out.append(h("li", { class: "empty" }, t("noResults")));
    for (const x of all) {
      const c = state.convs.get(x.kind + ":" + x.id);
      out.append(h("li", { tabindex: "0", class: "result", onclick: () => go("#/chat/" + x.kind + "/" + enc(x.id)),
                           onkeydown: (e) => { if (e.key === "Enter") go("#/chat/" + x.kind + "/" + enc(x.id)); } },
        h("div", { class: "title" }, h("span", {}, c ? title(c) : nameOf(x.id)), h("span", { class: "time" }, shortTime(x.m.createTime))),
        h("div", { class: "preview" }, nameOf(x.m.messageInfo.senderID) + ": " + (x.m.messageInfo.content.message || ""))));
    }
  } catch (e) { out.append(h("li", { class: "error" }, errorText(e))); }
}

