// What the page knows: the user, conversations (one-to-one and groups) with their unread
// counts from the server's read markers, the messages loaded, people's names, drafts, pins and
// mutes. Views subscribe to what they show (on/emit); an event from the server changes the
// state and says what changed, so a view touches only its own elements.
"use strict";

import { api, enc } from "./api.js";
import { t } from "./i18n.js";

export const state = {
  me: null, settings: {}, since: 0, live: false,
  convs: new Map(),      // key ("u:<peer>" / "g:<groupID>") -> conversation
  messages: new Map(),   // key -> {items, byId, nextBefore, loaded}
  names: new Map(),      // userID -> name
  groups: new Map(),     // groupID -> {members, userType, gset, notice} when looked at
  openKey: null, visible: !document.hidden,
};

const listeners = new Map();
export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}
export function emit(topic, data) {
  for (const fn of listeners.get(topic) || []) {
    try { fn(data); } catch (e) { console.error(e); }
  }
}

export function convKey(kind, id) { return kind + ":" + id; }
// A conversation in the client API: "conversations/<peerID>" or "groups/<groupID>".
function apiPath(c) { return (c.kind === "u" ? "conversations/" : "groups/") + enc(c.id); }
// The conversation an event about one names (`peerID` or `groupID`).
function eventKey(d) { return d.peerID ? convKey("u", d.peerID) : convKey("g", d.groupID); }

// -- things kept in this browser, per user --

function local(name) { return "imfed." + name + "." + (state.me ? state.me.userID : ""); }
function readLocal(name, fallback) {
  try { return JSON.parse(localStorage.getItem(local(name))) ?? fallback; } catch (e) { return fallback; }
}
function writeLocal(name, value) { localStorage.setItem(local(name), JSON.stringify(value)); }

export function draft(key) { return readLocal("drafts", {})[key] || ""; }
export function setDraft(key, text) {
  const all = readLocal("drafts", {});
  if (text) all[key] = text; else delete all[key];
  writeLocal("drafts", all);
}
// Pinned and muted: kept on the server for every device; a change elsewhere comes as a
// `pins` event.
export function flags(key) {
  const c = state.convs.get(key);
  return c ? { pinned: !!c.pinned, muted: !!c.muted } : {};
}
export async function setFlag(key, flag, value) {
  const c = state.convs.get(key);
  if (!c) return;
  const was = { pinned: c.pinned, muted: c.muted };
  const show = () => { emit("conv", key); emit("flags", key); emit("total"); };
  c[flag] = value; show();  // at once; put back if the server refuses
  try {
    const r = await api("PUT", apiPath(c) + "/pins", { [flag]: value });
    c.pinned = r.pinned; c.muted = r.muted;
  } catch (e) { Object.assign(c, was); throw e; } finally { show(); }
}

// -- names --

export function nameOf(userID) {
  if (!userID) return "";
  if (state.me && userID === state.me.userID) return state.me.name || userID;
  return state.names.get(userID) || userID.replace(/@.*$/, "");
}

export function learn(info) {
  if (!info || !info.userID || !info.name) return;
  if (state.names.get(info.userID) === info.name) return;
  state.names.set(info.userID, info.name);
  const kept = Object.fromEntries([...state.names].slice(-500));
  writeLocal("names", kept);
  emit("name", info.userID);
}

const asked = new Set();
// Names not known yet are asked of the server once (another server's users through it);
// ``again``: asked even if known (a name kept from before may have changed since).
export function askNames(ids, again) {
  for (const id of ids) {
    if (!id || (!again && state.names.has(id)) || asked.has(id) || (state.me && id === state.me.userID)) continue;
    asked.add(id);
    api("GET", "users/info", undefined, { userID: id })
      .then((r) => learn(r.userInfo)).catch(() => {});
  }
}

// -- conversations --

export function preview(m) {
  if (!m) return "";
  const info = m.messageInfo || {};
  if (m.recalled || info.messageType === "repeal") return t("recalled");
  const c = info.content || {};
  if (info.messageType === "text") return (c.message || "").replace(/\s+/g, " ");
  if (info.messageType === "image") return "[" + t("image") + "]";
  if (info.messageType === "voice") return "[" + t("voice") + "]";
  return "[" + (c.name || t("file")) + "]";
}

function conv(key, kind, id) {
  let c = state.convs.get(key);
  if (!c) {
    c = { key, kind, id, title: "", last: null, time: 0, unread: 0, read: 0, gone: null };
    state.convs.set(key, c);
  }
  return c;
}

export function title(c) {
  return c.kind === "u" ? nameOf(c.id) : (c.title || t("groups"));
}

export function mentionsMe(m) {
  const text = ((m.messageInfo || {}).content || {}).message || "";
  return !!(state.me && state.me.name && text.includes("@" + state.me.name));
}

export async function loadAll() {
  const [me, c, g, f] = await Promise.all([
    api("GET", "me"), api("GET", "conversations"), api("GET", "groups"),
    api("GET", "friends")]);
  state.me = me.userInfo; state.settings = me.settings || {};
  // Conversations as they are now; the events after this seq keep them current.
  state.since = me.lastEventSeq || 0;
  state.names = new Map(Object.entries(readLocal("names", {})));
  for (const fr of f.friends) if (fr.userInfo) state.names.set(fr.userID, fr.userInfo.name);
  for (const x of c.conversations) {
    const k = conv(convKey("u", x.peerID), "u", x.peerID);
    k.last = x.last; k.time = x.last ? x.last.createTime : 0;
    k.unread = x.unread || 0; k.read = x.readSeq || 0; k.pinned = !!x.pinned; k.muted = !!x.muted;
  }
  for (const e of g.groups) {
    const gi = e.groupInfo, k = conv(convKey("g", gi.groupID), "g", gi.groupID);
    k.title = gi.groupName; k.memberNum = gi.groupMemberNum; k.userType = e.userType;
    k.last = e.last || null; k.time = e.last ? e.last.createTime : gi.createTime;
    k.unread = e.unread || 0; k.read = e.readGseq || 0; k.pinned = !!e.pinned; k.muted = !!e.muted;
  }
  // Pins and mutes an earlier version kept in this browser go to the server, once.
  const old = readLocal("flags", null);
  if (old) {
    localStorage.removeItem(local("flags"));
    for (const [key, f] of Object.entries(old))
      for (const flag of ["pinned", "muted"])
        if (f && f[flag] && state.convs.has(key) && !state.convs.get(key)[flag])
          setFlag(key, flag, true).catch(() => {});
  }
  // The people of the 30 latest conversations are asked again, after the list is shown.
  setTimeout(() => askNames(sortedConvs().filter((k) => k.kind === "u").slice(0, 30)
                                          .map((k) => k.id), true), 0);
}

export function sortedConvs() {
  return [...state.convs.values()].sort((a, b) =>
    (b.pinned ? 1 : 0) - (a.pinned ? 1 : 0) || b.time - a.time);
}

export function unreadTotal() {
  let n = 0;
  for (const c of state.convs.values()) if (!c.muted) n += c.unread;
  return n;
}

// -- messages --

export function msgId(m) { return m.messageInfo.messageID; }
export function order(m) { return m.seq ?? m.gseq ?? 0; }

function box(key) {
  let b = state.messages.get(key);
  // early: what events brought while the first page was on its way (kept after it, unless
  // the page had it already).
  if (!b) { b = { items: [], byId: new Map(), nextBefore: null, loaded: false, loading: false, early: [] }; state.messages.set(key, b); }
  return b;
}

async function fetchPage(c, b, older) {
  // One-to-one: newest first, from the newest without `before`; a group: oldest first, from
  // the newest with an empty `before`, its lines beside.
  const newest = c.kind === "u" ? undefined : "";
  const r = await api("GET", apiPath(c) + "/messages", undefined,
                      { limit: 50, before: older ? b.nextBefore : newest });
  b.nextBefore = r.nextBefore;
  return c.kind === "u" ? r.messages.slice().reverse() : withLines(r.messages, r.lines || []);
}

export async function loadMessages(key, older) {
  const c = state.convs.get(key), b = box(key);
  if (older && !b.nextBefore) return [];
  if (!older && b.loaded) return b.items;
  let page;
  if (older) page = await fetchPage(c, b, true);
  else {
    b.loading = true; b.early = [];
    try { page = await fetchPage(c, b, false); } finally { b.loading = false; }
  }
  const fresh = page.filter((m) => !b.byId.has(msgId(m)));
  for (const m of fresh) b.byId.set(msgId(m), m);
  b.items = older ? fresh.concat(b.items) : fresh.concat(b.items.filter((m) => !fresh.includes(m)));
  if (!older) {
    for (const m of b.early) if (!b.byId.has(msgId(m))) { b.byId.set(msgId(m), m); b.items.push(m); }
    b.early = [];
  }
  b.loaded = true;
  askNames(page.filter((m) => !m.system).map((m) => m.messageInfo.senderID));
  return fresh;
}

// A page of a group's messages with the group's lines where the server placed them: each
// after the message it follows, or before the page's first.
function withLines(messages, lines) {
  const out = lines.filter((l) => !messages.some((m) => msgId(m) === l.after)).map(lineItem);
  for (const m of messages) {
    out.push(m);
    for (const l of lines) if (l.after === msgId(m)) out.push(lineItem(l));
  }
  return out.filter((m) => !(m.system && m.text === null));
}

function lineItem(l) {
  return { system: true, text: lineText(l), createTime: l.time,
           messageInfo: { messageID: "line-" + l.id } };
}

function addMessage(key, m) {
  const b = box(key), c = state.convs.get(key);
  const had = b.byId.get(msgId(m));
  if (had) { Object.assign(had, m); emit("msg", { key, m: had, op: "update" }); return false; }
  // Kept once the history is loaded (before, the history brings it: only one that came while
  // the history was on its way is kept aside, in case the history was read before it).
  if (b.loaded) { b.byId.set(msgId(m), m); b.items.push(m); emit("msg", { key, m, op: "add" }); }
  else if (b.loading) b.early.push(m);
  if (c && (!c.last || order(m) >= order(c.last) || !order(m))) { c.last = m; c.time = m.createTime || Date.now(); }
  return true;
}

// A line in a group's chat for what happened to it (joins, removals, renames) as it happens;
// the server keeps them too, given with the history (withLines).
function systemLine(key, text, lineID) {
  const b = box(key);
  if (text === null) return;
  const m = { system: true, text, createTime: Date.now(),  // the same ID as the history gives it
              messageInfo: { messageID: lineID ? "line-" + lineID : "sys-" + Math.random().toString(36).slice(2) } };
  if (!b.loaded) { if (b.loading) b.early.push(m); return; }
  if (b.byId.has(msgId(m))) return;
  b.items.push(m); b.byId.set(m.messageInfo.messageID, m);
  emit("msg", { key, m, op: "add" });
}

// The read marker moves to what is shown: told to the server (which tells other tabs and
// devices with a `read` event).
const marking = new Map();
export function markRead(key) {
  const c = state.convs.get(key);
  if (!c || !c.last || c.gone) return;
  const upTo = order(c.last);
  if (!upTo || (upTo <= c.read && !c.unread)) return;
  c.read = Math.max(c.read, upTo); c.unread = 0;
  emit("conv", key);
  clearTimeout(marking.get(key));
  marking.set(key, setTimeout(() => {
    api("POST", apiPath(c) + "/read", c.kind === "u" ? { seq: upTo } : { gseq: upTo }).catch(() => {});
  }, 150));
}

function visibleAndOpen(key) { return state.openKey === key && state.visible; }

// -- events from the server --

export function handle(ev) {
  const d = ev.data, me = state.me.userID;
  if (ev.type === "message") {
    const info = d.messageInfo, peer = info.senderID === me ? info.recvID : info.senderID;
    const key = convKey("u", peer);
    conv(key, "u", peer);
    askNames([peer]);
    const isNew = addMessage(key, d);
    const c = state.convs.get(key);
    if (info.senderID !== me && isNew) {
      if (visibleAndOpen(key)) markRead(key);
      else { c.unread += 1; emit("notify", { key, m: d }); }
    } else if (info.senderID === me) { c.read = Math.max(c.read, d.seq || 0); }
    emit("conv", key);
  } else if (ev.type === "group_message") {
    const info = d.messageInfo, key = convKey("g", info.recvID);
    const c = conv(key, "g", info.recvID);
    askNames([info.senderID]);
    const isNew = addMessage(key, d);
    if (info.senderID !== me && isNew && !d.recalled) {
      if (visibleAndOpen(key)) markRead(key);
      else { c.unread += 1; emit("notify", { key, m: d }); }
    }
    emit("conv", key);
  } else if (ev.type === "delivery") {
    for (const [key, b] of state.messages) {
      const m = b.byId.get(d.messageID);
      if (m) { m.state = d.state; m.error = d.error; emit("msg", { key, m, op: "update" }); }
    }
  } else if (ev.type === "recall" || ev.type === "group_recall") {
    let unreadOne = null;  // a recalled message of another's one had not read counts no more
    for (const [k, b] of state.messages) {
      const m = b.byId.get(d.messageID);
      if (!m) continue;
      const c = state.convs.get(k);
      if (c && !m.recalled && d.senderID !== me && order(m) > c.read && c.unread) unreadOne = c;
      m.recalled = true; m.recalledBy = d.by; emit("msg", { key: k, m, op: "update" });
    }
    if (unreadOne) unreadOne.unread -= 1;
    for (const c of state.convs.values())
      if (c.last && msgId(c.last) === d.messageID) { c.last = Object.assign({}, c.last, { recalled: true }); emit("conv", c.key); }
    if (unreadOne) emit("conv", unreadOne.key);
  } else if (ev.type === "read") {
    const key = eventKey(d), c = state.convs.get(key);
    if (c) {
      const at = d.peerID ? d.seq : d.gseq;
      c.read = Math.max(c.read, at);
      if (!c.last || order(c.last) <= c.read) c.unread = 0;
      emit("conv", key);
    }
  } else if (ev.type === "pins") {
    const key = eventKey(d), c = state.convs.get(key);
    if (c) { c.pinned = !!d.pinned; c.muted = !!d.muted; emit("conv", key); emit("flags", key); }
  } else if (ev.type === "profile") {
    state.me = d.userInfo; emit("me");
  } else if (ev.type === "group_joined") {
    const key = convKey("g", d.groupID), c = conv(key, "g", d.groupID);
    c.title = d.groupName || c.title; c.gone = null; c.time = Date.now();
    emit("conv", key); emit("groups");
  } else if (ev.type === "group_notify") {
    groupNotify(d);
  } else if (ev.type === "group_invitation") {
    emit("groups");
    emit("notify", { invitation: d });
  } else if (ev.type.startsWith("friend_")) {
    if (d.fromInfo) learn(d.fromInfo);
    if (d.userInfo) learn(d.userInfo);
    if (ev.type === "friend_request") emit("notify", { request: d });
    emit("contacts");
  }
  emit("total");
}

// What a group's line says of a change: a group_notify event, or a line the server kept
// (which has groupName and groupNotice at its top); null for nothing to say.
function lineText(d) {
  // The name known now (one's own, or one learnt), else the one the change carried.
  const who = (u) => {
    if (!u || !u.userID) return "";
    const known = state.names.has(u.userID) || u.userID === state.me.userID;
    return known || !u.name ? nameOf(u.userID) : u.name;
  };
  const names = (d.users || []).map(who).join(", "), by = who(d.operUser), gi = d.groupInfo || d;
  const changed = d.changed || [];
  switch (Number(d.operType)) {
    case 1: return t("joined", { who: names });
    case 2: return t("removed", { who: names });
    case 3: return t("dissolvedLine", { who: by });
    case 4: return t("madeAdmin", { who: names });
    case 5: return t("unmadeAdmin", { who: names });
    case 6: return t("transferred", { who: names });
    case 7: {
      const notice = gi.groupNotice;
      if (changed.includes("groupNotice") && notice && notice.text)
        return t("announced", { who: nameOf(notice.userID), text: notice.text });
      if (changed.includes("groupName")) return t("renamed", { who: by, name: gi.groupName });
      if (changed.includes("groupIcon") || changed.includes("grpset"))
        return t("settingsChanged", { who: by });
      return null;  // nothing changed here, or an announcement taken down
    }
  }
  return null;
}

function groupNotify(d) {
  const gid = d.groupID || (d.groupInfo || {}).groupID, key = convKey("g", gid);
  const c = conv(key, "g", gid), me = state.me.userID;
  for (const u of d.users || []) learn(u);
  learn(d.operUser);
  const gi = d.groupInfo || {};
  if (gi.groupName) c.title = gi.groupName;
  if (gi.groupMemberNum) c.memberNum = gi.groupMemberNum;
  const type = Number(d.operType);
  systemLine(key, lineText(d), d.lineID);
  if (type === 2 && (d.users || []).some((u) => u.userID === me)) c.gone = "removed";
  else if (type === 3) c.gone = "dissolved";
  if (state.groups.has(gid)) state.groups.delete(gid);  // looked at again when shown
  emit("conv", key);
  emit("group", gid);
  emit("groups");
}

export async function groupDetails(gid, fresh) {
  if (!fresh && state.groups.has(gid)) return state.groups.get(gid);
  const g = await api("GET", "groups/" + enc(gid));
  for (const m of g.members || []) learn(m.userInfo);
  const mine = (g.members || []).find((m) => m.userInfo.userID === state.me.userID);
  const details = { name: g.groupInfo.groupName, info: g.groupInfo, gset: g.gset || {},
                    members: g.members || [], myRole: mine ? mine.userType : 0,
                    notice: g.groupInfo.groupNotice || null };
  state.groups.set(gid, details);
  const c = state.convs.get(convKey("g", gid));
  if (c) { c.title = details.name; c.memberNum = g.groupInfo.groupMemberNum; c.userType = details.myRole; }
  return details;
}

export function touchConv(kind, id, titleText) {
  const key = convKey(kind, id), c = conv(key, kind, id);
  if (titleText) c.title = titleText;
  if (!c.time) c.time = Date.now();
  emit("conv", key);
  return key;
}
