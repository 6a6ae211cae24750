// imfed web client: chat across servers in the browser, on the node's client API
// (docs/client-api.md, docs/groups.md, docs/webclient.md). No build step, no library.
// Every string from a user or a server reaches the page as text (h() makes text nodes),
// never as HTML; the page's Content-Security-Policy allows no inline script.
"use strict";

const STRINGS = {
  en: {
    signIn: "Sign in", signOut: "Sign out", login: "Phone number or user ID",
    password: "Password", badLogin: "Wrong login or password", chats: "Chats",
    contacts: "Contacts", groups: "Groups", send: "Send", message: "Message",
    attach: "Attach a file", image: "Image", noChats: "No conversations yet",
    pick: "Pick a conversation", queued: "queued", sent: "sent", received: "",
    failed: "failed", retry: "Retry", recall: "Recall", recalled: "message recalled",
    search: "Search people on every server", searchButton: "Search", add: "Add friend",
    noAnswer: "did not answer", incoming: "Requests to you", outgoing: "Your requests",
    accept: "Accept", decline: "Decline", friends: "Friends", chat: "Chat",
    remove: "Delete", pending: "pending", createGroup: "New group", groupName: "Group name",
    create: "Create", invitations: "Invitations", members: "Members", invite: "Invite",
    inviteIds: "User IDs to invite (comma separated)", quit: "Leave", dissolve: "Dissolve",
    rename: "Rename", makeAdmin: "Make admin", unmakeAdmin: "Remove admin",
    transfer: "Make owner", owner: "owner", admin: "admin", member: "member",
    connected: "live", reconnecting: "reconnecting…", notify: "Notify me",
    download: "Download", back: "Back", language: "Language", voice: "Record",
    stop: "Stop", older: "Older messages", requestSent: "Request sent",
    profile: "Profile", sentRequest: "wants to be your friend", uploadFailed: "Upload failed",
    confirmDissolve: "Dissolve this group for everyone?", settings: "Settings",
    membersInvite: "Members may invite", visible: "Found by search",
  },
  zh: {
    signIn: "登录", signOut: "退出", login: "手机号或用户ID", password: "密码",
    badLogin: "账号或密码错误", chats: "会话", contacts: "联系人", groups: "群组",
    send: "发送", message: "消息", attach: "发送文件", image: "图片",
    noChats: "还没有会话", pick: "选择一个会话", queued: "排队中", sent: "已送达",
    received: "", failed: "发送失败", retry: "重试", recall: "撤回",
    recalled: "消息已撤回", search: "在所有服务器上查找用户", searchButton: "搜索",
    add: "加为好友", noAnswer: "未响应", incoming: "收到的请求", outgoing: "发出的请求",
    accept: "同意", decline: "拒绝", friends: "好友", chat: "聊天", remove: "删除",
    pending: "等待中", createGroup: "创建群组", groupName: "群名称", create: "创建",
    invitations: "群邀请", members: "成员", invite: "邀请",
    inviteIds: "要邀请的用户ID（逗号分隔）", quit: "退出群组", dissolve: "解散",
    rename: "改名", makeAdmin: "设为管理员", unmakeAdmin: "取消管理员", transfer: "转让群主",
    owner: "群主", admin: "管理员", member: "成员", connected: "在线",
    reconnecting: "正在重新连接…", notify: "开启通知", download: "下载", back: "返回",
    language: "语言", voice: "录音", stop: "停止", older: "更早的消息",
    requestSent: "请求已发送", profile: "资料", sentRequest: "请求加你为好友",
    uploadFailed: "上传失败", confirmDissolve: "确定为所有人解散该群组？", settings: "设置",
    membersInvite: "成员可邀请", visible: "可被搜索",
  },
};

const state = {
  lang: localStorage.getItem("imfed.lang") ||
        ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en"),
  token: localStorage.getItem("imfed.token"),
  me: null, settings: {}, tab: "chats", open: null, since: 0,
  convs: new Map(), messages: new Map(), unread: new Map(), live: false,
  polling: null, blobs: new Map(),
};

function t(key) { return (STRINGS[state.lang] || STRINGS.en)[key] ?? key; }

// -- DOM: text is always text --

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function $(sel) { return document.querySelector(sel); }

// -- the API --

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.desc)) || "HTTP " + status);
    this.status = status; this.body = body || {};
  }
}

async function api(method, path, body, query) {
  const url = new URL("/api/v1/" + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined) url.searchParams.set(k, v);
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  let data;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; data = JSON.stringify(body); }
  const response = await fetch(url, { method, headers, body: data, credentials: "omit" });
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 401 && path !== "login") { signedOut(); }
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/files?name=" + encodeURIComponent(file.name || "file"));
    xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* */ }
      xhr.status === 200 ? resolve(body) : reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { error: t("uploadFailed") }));
    xhr.send(file);
  });
}

function fetchFile(fileID, onProgress) {
  if (state.blobs.has(fileID)) return Promise.resolve(state.blobs.get(fileID));
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("GET", "/api/v1/files/" + encodeURIComponent(fileID));
    xhr.responseType = "blob";
    xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.onprogress = (e) => onProgress && e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      if (xhr.status !== 200) { reject(new ApiError(xhr.status, {})); return; }
      const url = URL.createObjectURL(xhr.response);
      state.blobs.set(fileID, url);
      resolve(url);
    };
    xhr.onerror = () => reject(new ApiError(0, {}));
    xhr.send();
  });
}

// -- sign in and out --

function renderSignIn(error) {
  const app = $("#app");
  const typed = $("#login") ? $("#login").value : "";
  app.replaceChildren(h("main", { class: "signin" },
    h("h1", {}, "imfed"),
    h("form", { id: "signin", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("POST", "login", { login: $("#login").value, password: $("#password").value });
        state.token = r.token; localStorage.setItem("imfed.token", r.token);
        await start();
      } catch (err) { renderSignIn(err.status === 401 ? t("badLogin") : err.message); }
    } },
      h("label", { for: "login" }, t("login")),
      h("input", { id: "login", name: "login", autocomplete: "username", required: true,
                   value: typed }),
      h("label", { for: "password" }, t("password")),
      h("input", { id: "password", name: "password", type: "password",
                   autocomplete: "current-password", required: true }),
      error ? h("p", { class: "error", role: "alert" }, error) : null,
      h("button", { class: "primary", type: "submit" }, t("signIn"))),
    languageSwitch()));
  (typed ? $("#password") : $("#login")).focus();
}

function languageSwitch() {
  return h("label", { class: "muted" }, t("language") + " ",
    h("select", { id: "lang", "aria-label": t("language"), onchange: (e) => {
      state.lang = e.target.value; localStorage.setItem("imfed.lang", state.lang);
      document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
      state.me ? render() : renderSignIn();
    } }, ...[["en", "English"], ["zh", "中文"]].map(([v, n]) =>
      h("option", { value: v, selected: state.lang === v }, n))));
}

function signedOut() {
  state.token = null; state.me = null; localStorage.removeItem("imfed.token");
  if (state.polling) { state.polling.abort(); state.polling = null; }
  renderSignIn();
}

async function signOut() {
  try { await api("POST", "logout"); } catch (e) { /* gone already */ }
  signedOut();
}

// -- conversations --

function convKey(kind, id) { return kind + ":" + id; }

function preview(info) {
  if (!info) return "";
  const c = info.content || {};
  if (info.messageType === "text") return c.message || "";
  if (info.messageType === "image") return "[" + t("image") + "]";
  if (info.messageType === "voice") return "[" + t("voice") + "]";
  return "[" + (c.name || "file") + "]";
}

function touch(key, kind, id, title, info, time) {
  const conv = state.convs.get(key) || { key, kind, id, title: title || id, last: "", time: 0 };
  if (title) conv.title = title;
  if (info) { conv.last = preview(info); conv.time = Math.max(conv.time, time || Date.now()); }
  state.convs.set(key, conv);
  return conv;
}

async function loadConversations() {
  const [c, g] = await Promise.all([api("GET", "conversations"), api("GET", "groups")]);
  for (const conv of c.conversations)
    touch(convKey("u", conv.peerID), "u", conv.peerID, conv.peerID, conv.last.messageInfo,
          conv.last.createTime);
  for (const entry of g.groups)
    touch(convKey("g", entry.groupInfo.groupID), "g", entry.groupInfo.groupID,
          entry.groupInfo.groupName, null, entry.groupInfo.createTime);
}

function unreadTotal() { let n = 0; for (const v of state.unread.values()) n += v; return n; }

function updateTitle() {
  const n = unreadTotal();
  document.title = (n ? "(" + n + ") " : "") + "imfed";
  const badge = $("#unread-total");
  if (badge) { badge.textContent = n ? String(n) : ""; badge.classList.toggle("hidden", !n); }
}

// -- the page --

function render() {
  const app = $("#app");
  const layout = h("div", { class: "layout" + (state.open ? " open" : "") },
    h("div", { class: "pane side", id: "side" }), h("div", { class: "pane main", id: "main" }));
  app.replaceChildren(
    h("header", {},
      h("h1", {}, "imfed"),
      h("nav", { class: "tabs", role: "tablist" }, ...["chats", "contacts", "groups"].map((tab) =>
        h("button", { role: "tab", id: "tab-" + tab, "aria-selected": String(state.tab === tab),
                      onclick: () => { state.tab = tab; state.open = null; state.openGroup = null;
                                       render(); } },
          t(tab), tab === "chats" ? h("span", { id: "unread-total", class: "badge hidden" }) : null))),
      h("span", { id: "live", class: "status" + (state.live ? "" : " down") },
        state.live ? t("connected") : t("reconnecting")),
      h("span", { class: "me" }, state.me.name + " · " + state.me.userID),
      "Notification" in window && Notification.permission === "default" ?
        h("button", { onclick: () => Notification.requestPermission() }, t("notify")) : null,
      languageSwitch(),
      h("button", { id: "signout", onclick: signOut }, t("signOut"))),
    layout);
  if (state.tab === "chats") renderChats();
  else if (state.tab === "contacts") renderContacts();
  else renderGroups();
  updateTitle();
}

function renderChats() {
  const list = [...state.convs.values()].sort((a, b) => b.time - a.time);
  $("#side").replaceChildren(list.length ? h("ul", { class: "list", id: "conversations" },
    ...list.map((c) => h("li", {
      class: state.open === c.key ? "active" : "", tabindex: "0", "data-key": c.key,
      onclick: () => openConv(c.key), onkeydown: (e) => e.key === "Enter" && openConv(c.key) },
      h("div", { class: "title" }, h("span", {}, c.title),
        state.unread.get(c.key) ? h("span", { class: "badge" }, String(state.unread.get(c.key))) : null),
      h("div", { class: "preview" }, c.last))))
    : h("p", { class: "empty" }, t("noChats")));
  if (state.open) renderChat();
  else if (!$("#main .empty")) $("#main").replaceChildren(h("p", { class: "empty" }, t("pick")));
}

async function openConv(key) {
  state.open = key; state.tab = "chats";
  state.unread.delete(key);
  render();
  const conv = state.convs.get(key);
  if (!state.messages.has(key)) {
    if (conv.kind === "u") {
      const r = await api("GET", "conversations/" + encodeURIComponent(conv.id) + "/messages",
                          undefined, { limit: 50 });
      state.messages.set(key, { items: r.messages.slice().reverse(), nextBefore: r.nextBefore });
    } else {
      const r = await api("GET", "groups/" + encodeURIComponent(conv.id) + "/messages",
                          undefined, { limit: 500 });
      state.messages.set(key, { items: r.messages, nextBefore: null });
    }
  }
  if (state.open === key) renderChat();
}

async function loadOlder(key) {
  const conv = state.convs.get(key), box = state.messages.get(key);
  if (!box || !box.nextBefore || conv.kind !== "u") return;
  const r = await api("GET", "conversations/" + encodeURIComponent(conv.id) + "/messages",
                      undefined, { limit: 50, before: box.nextBefore });
  box.items = r.messages.slice().reverse().concat(box.items);
  box.nextBefore = r.nextBefore;
  const scroller = $("#messages"), height = scroller ? scroller.scrollHeight : 0;
  renderChat();
  const after = $("#messages");
  if (after) after.scrollTop = after.scrollHeight - height;
}

function msgId(m) { return m.messageInfo.messageID; }

function renderMessage(conv, m) {
  const info = m.messageInfo, mine = info.senderID === state.me.userID;
  const c = info.content || {};
  let body;
  if (m.recalled) body = h("span", {}, t("recalled"));
  else if (info.messageType === "text") body = h("span", { class: "text" }, c.message);
  else if (info.messageType === "image") {
    const img = h("img", { alt: c.name || t("image"), "data-file": c.fileID });
    fetchFile(c.fileID).then((url) => { img.src = url; }).catch(() => { img.alt = t("failed"); });
    body = img;
  } else if (info.messageType === "voice") {
    const audio = h("audio", { controls: true, "data-file": c.fileID });
    fetchFile(c.fileID).then((url) => { audio.src = url; }).catch(() => {});
    body = h("span", {}, audio, " " + (c.duration || "?") + " s");
  } else {
    const bar = h("progress", { max: "1", value: "0", class: "hidden" });
    body = h("span", { class: "file" }, (c.name || "file") + " (" + size(c.size) + ") ",
      h("button", { class: "download", "data-file": c.fileID, onclick: async () => {
        bar.classList.remove("hidden");
        const url = await fetchFile(c.fileID, (p) => { bar.value = p; });
        const a = h("a", { href: url, download: c.name || "file" });
        document.body.append(a); a.click(); a.remove();
      } }, t("download")), bar);
  }
  const meta = h("div", { class: "meta" });
  if (conv.kind === "g" && !mine) meta.append(h("span", { class: "sender" }, info.senderID));
  if (m.createTime) meta.append(new Date(m.createTime).toLocaleTimeString());
  if (mine && m.state && m.state !== "received" && !m.recalled) {
    meta.append(h("span", { class: "state state-" + m.state }, t(m.state) + (m.error ? ": " + m.error : "")));
    if (m.state === "failed")
      meta.append(h("button", { class: "retry", onclick: () => sendContent(conv, info.messageType, c) }, t("retry")));
  }
  const window_ = (state.settings.recallWindowSeconds || 120) * 1000;
  if (mine && conv.kind === "u" && !m.recalled && Date.now() - (m.createTime || 0) < window_)
    meta.append(h("button", { class: "recall", onclick: async () => {
      try { await api("POST", "messages/" + encodeURIComponent(msgId(m)) + "/recall"); }
      catch (e) { alert(e.message); }
    } }, t("recall")));
  return h("div", { class: "msg" + (mine ? " mine" : "") + (m.recalled ? " recalled" : ""),
                    "data-id": msgId(m) }, body, meta);
}

function size(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MB";
  if (n >= 1024) return (n / 1024).toFixed(1) + " KB";
  return n + " B";
}

function messageNodes(conv) {
  const box = state.messages.get(conv.key) || { items: [] };
  return [box.nextBefore ? h("button", { class: "older", onclick: () => loadOlder(conv.key) }, t("older")) : null,
          ...box.items.map((m) => renderMessage(conv, m))].filter(Boolean);
}

function renderChat() {
  const conv = state.convs.get(state.open);
  if (!conv) return;
  const shown = $("#main .chat");
  if (shown && shown.dataset.key === conv.key) {
    // The same conversation: new messages in, what is being typed left alone.
    const list = $("#messages");
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.replaceChildren(...messageNodes(conv));
    if (atEnd) list.scrollTop = list.scrollHeight;
    return;
  }
  const list = h("div", { class: "messages", id: "messages", role: "log", "aria-label": conv.title,
    onscroll: (e) => { if (e.target.scrollTop === 0) loadOlder(conv.key); } },
    ...messageNodes(conv));
  const progress = h("progress", { max: "1", value: "0", class: "hidden", id: "upload-progress" });
  const text = h("textarea", { id: "compose", "aria-label": t("message"), placeholder: t("message"),
    onkeydown: (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); } } });
  const fileInput = h("input", { type: "file", id: "attach", "aria-label": t("attach"),
    onchange: async (e) => {
      const file = e.target.files[0]; if (!file) return;
      progress.classList.remove("hidden");
      try {
        const up = await upload(file, (p) => { progress.value = p; });
        await sendContent(conv, file.type.startsWith("image/") ? "image" : "file", { fileID: up.fileID });
      } catch (err) { alert(t("uploadFailed") + ": " + err.message); }
      progress.classList.add("hidden"); e.target.value = "";
    } });
  async function send() {
    const value = text.value;
    if (!value.trim()) return;
    text.value = "";
    await sendContent(conv, "text", { message: value });
  }
  const head = h("div", { class: "head" },
    h("button", { class: "back", onclick: () => { state.open = null; render(); } }, t("back")),
    h("h2", { id: "chat-title" }, conv.title));
  if (conv.kind === "g")
    head.append(h("button", { id: "group-settings", onclick: () => showGroup(conv.id) }, t("members")));
  const recorder = voiceButton(conv);
  $("#main").replaceChildren(h("section", { class: "chat", "data-key": conv.key }, head, list,
    h("div", { class: "compose" }, text,
      h("button", { class: "primary", id: "send", onclick: send }, t("send")),
      h("label", { class: "muted", for: "attach" }, t("attach")), fileInput, recorder, progress)));
  list.scrollTop = list.scrollHeight;
}

function voiceButton(conv) {
  if (!window.MediaRecorder || !navigator.mediaDevices) return null;
  let recorder = null, started = 0;
  const button = h("button", { class: "voice", onclick: async () => {
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
        recorder = null; button.textContent = t("voice");
        const file = new File([blob], "voice.webm", { type: blob.type });
        const up = await upload(file, () => {});
        await sendContent(conv, "voice", { fileID: up.fileID, duration: seconds });
      };
      started = Date.now(); recorder.start(); button.textContent = t("stop");
    } catch (e) { alert(e.message); }
  } }, t("voice"));
  return button;
}

function newTxnId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sendContent(conv, type, content) {
  // One txnId per message: sent again after a broken connection, it is sent once
  // (docs/client-api.md, idempotent sends).
  const txnId = newTxnId();
  const send = () => conv.kind === "u"
    ? api("POST", "messages", { recvID: conv.id, messageType: type, content, txnId })
    : api("POST", "groups/" + encodeURIComponent(conv.id) + "/messages", { messageType: type, content, txnId });
  try {
    let r;
    try { r = await send(); } catch (e) {
      if (e instanceof ApiError) throw e;  // answered: not a broken connection
      r = await send();
    }
    if (conv.kind === "u") addMessage(conv.key, r.message);
  } catch (e) { alert(e.message); }
}

function addMessage(key, m) {
  const box = state.messages.get(key);
  if (box && !box.items.some((x) => msgId(x) === msgId(m))) box.items.push(m);
  const conv = state.convs.get(key);
  if (conv) { conv.last = preview(m.messageInfo); conv.time = Date.now(); }
  if (state.tab === "chats") renderChats();
}

// -- events: long poll, resumed from the last seq, reconnecting by itself --

async function poll() {
  // The first ask (and the first after a failure) does not wait: the page knows at once
  // that it is live again; then each ask waits up to 25 s for the next event.
  let delay = 500, wait = 0;
  while (state.token) {
    const controller = new AbortController();
    state.polling = controller;
    try {
      const url = new URL("/api/v1/events", location.origin);
      url.searchParams.set("since", state.since); url.searchParams.set("wait", String(wait));
      const response = await fetch(url, { headers: { Authorization: "Bearer " + state.token },
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

function notifyUser(title, body) {
  if (document.hidden && "Notification" in window && Notification.permission === "granted")
    new Notification(title, { body });
}

function handle(ev) {
  const d = ev.data;
  if (ev.type === "message") {
    const info = d.messageInfo;
    const peer = info.senderID === state.me.userID ? info.recvID : info.senderID;
    const key = convKey("u", peer);
    touch(key, "u", peer, peer, info, d.createTime);
    if (info.senderID !== state.me.userID) {
      if (state.open !== key) state.unread.set(key, (state.unread.get(key) || 0) + 1);
      notifyUser(peer, preview(info));
    }
    addMessage(key, d);
  } else if (ev.type === "group_message") {
    const info = d.messageInfo, key = convKey("g", info.recvID);
    touch(key, "g", info.recvID, null, info, d.createTime);
    if (info.senderID !== state.me.userID && state.open !== key)
      state.unread.set(key, (state.unread.get(key) || 0) + 1);
    addMessage(key, d);
  } else if (ev.type === "delivery" || ev.type === "recall") {
    for (const [key, box] of state.messages)
      box.items.forEach((m, i) => {
        if (msgId(m) !== d.messageID) return;
        if (ev.type === "recall") {
          m.recalled = true;
          const conv = state.convs.get(key);
          if (conv && i === box.items.length - 1) conv.last = t("recalled");
        } else { m.state = d.state; m.error = d.error; }
      });
    if (state.tab === "chats") renderChats();
  } else if (ev.type === "group_joined" || ev.type === "group_notify" || ev.type === "group_invitation") {
    const g = d.groupInfo || {};
    const id = d.groupID || g.groupID;
    if (ev.type !== "group_invitation" && id)
      touch(convKey("g", id), "g", id, g.groupName || d.groupName, null, Date.now());
    if (ev.type === "group_notify" && d.operType === 3) state.convs.delete(convKey("g", id));
    // Refreshed in place (what is shown stays until its new content is there).
    if (state.tab === "groups") renderGroups();
    else if (state.tab === "chats") renderChats();
  } else if (ev.type.startsWith("friend_")) {
    if (ev.type === "friend_request") notifyUser(d.from, t("sentRequest"));
    if (state.tab === "contacts") renderContacts();
  }
  updateTitle();
}

// -- contacts --

async function renderContacts() {
  const side = $("#side"), main = $("#main");
  const results = h("div", { id: "search-results" });
  side.replaceChildren(h("div", { class: "panel" },
    h("form", { id: "search", onsubmit: async (e) => {
      e.preventDefault();
      results.replaceChildren();
      try {
        const r = await api("GET", "users/search", undefined, { q: $("#q").value });
        results.append(h("ul", { class: "list" }, ...r.users.map((u) => h("li", { class: "user" },
          h("div", { class: "title" }, u.name || u.userID), h("div", { class: "muted" }, u.userID),
          u.userID === state.me.userID ? null : h("button", { class: "add", onclick: async (ev) => {
            try { await api("POST", "friends/requests", { userID: u.userID, remark: "" });
                  ev.target.replaceWith(h("span", { class: "muted" }, t("requestSent"))); }
            catch (err) { alert(err.message); }
          } }, t("add"))))));
        const silent = Object.entries(r.servers).filter(([, v]) => v !== "ok");
        if (silent.length)
          results.append(h("p", { class: "muted", id: "silent-servers" },
            silent.map(([s, why]) => s + " " + t("noAnswer") + " (" + why + ")").join("; ")));
      } catch (err) { results.append(h("p", { class: "error" }, err.message)); }
    } },
      h("label", { for: "q" }, t("search")),
      h("div", { class: "row" }, h("input", { id: "q", required: true }),
        h("button", { class: "primary", type: "submit" }, t("searchButton")))),
    results));
  const [requests, friends] = await Promise.all([api("GET", "friends/requests"), api("GET", "friends")]);
  const incoming = requests.requests.filter((r) => r.direction === "incoming");
  const outgoing = requests.requests.filter((r) => r.direction === "outgoing");
  const answer = (r, agree) => async () => {
    try { await api("POST", "friends/requests/" + encodeURIComponent(r.requestID) + "/answer", { agree }); }
    catch (e) { alert(e.message); }
    renderContacts();
  };
  const me = state.me;
  main.replaceChildren(h("div", { class: "panel" },
    h("section", { id: "profile" }, h("h2", {}, t("profile")),
      h("div", { class: "title" }, me.name), h("div", { class: "muted" }, me.userID),
      h("div", { class: "muted" }, me.phoneNumber)),
    h("section", { id: "incoming" }, h("h2", {}, t("incoming")), h("ul", { class: "list" },
      ...incoming.map((r) => h("li", { class: "request" },
        h("div", { class: "title" }, (r.fromInfo && r.fromInfo.name) || r.from),
        h("div", { class: "muted" }, r.from + (r.remark ? " · " + r.remark : "")),
        h("div", { class: "row" }, h("button", { class: "primary accept", onclick: answer(r, true) }, t("accept")),
          h("button", { class: "decline", onclick: answer(r, false) }, t("decline"))))))),
    h("section", { id: "outgoing" }, h("h2", {}, t("outgoing")), h("ul", { class: "list" },
      ...outgoing.map((r) => h("li", {}, r.to + " · " + t("pending"))))),
    h("section", { id: "friends" }, h("h2", {}, t("friends")), h("ul", { class: "list" },
      ...friends.friends.map((f) => h("li", { class: "friend" },
        h("div", { class: "title" }, (f.userInfo && f.userInfo.name) || f.userID),
        h("div", { class: "muted" }, f.userID),
        h("div", { class: "row" },
          h("button", { class: "show-profile", onclick: (ev) => showProfile(f.userID, ev.target) },
            t("profile")),
          h("button", { class: "chat-with", onclick: () => {
            touch(convKey("u", f.userID), "u", f.userID, f.userID, null, Date.now());
            openConv(convKey("u", f.userID)); } }, t("chat")),
          h("button", { class: "danger", onclick: async () => {
            try { await api("POST", "friends/delete", { userID: f.userID }); } catch (e) { alert(e.message); }
            renderContacts(); } }, t("remove")))))))));
}

async function showProfile(userID, near) {
  try {
    const r = await api("GET", "users/info", undefined, { userID });
    const info = r.userInfo || {};
    near.replaceWith(h("span", { class: "muted profile" },
      [info.name, info.phoneNumber, info.remark].filter(Boolean).join(" · ")));
  } catch (e) { alert(e.message); }
}

// -- groups --

async function renderGroups() {
  const [g, inv] = await Promise.all([api("GET", "groups"), api("GET", "groups/invitations")]);
  const answer = (i, agree) => async () => {
    try {
      const r = await api("POST", "groups/invitations/" + encodeURIComponent(i.invitationID) + "/answer", { agree });
      if (agree) touch(convKey("g", r.groupID), "g", r.groupID, i.groupInfo.groupName, null, Date.now());
    } catch (e) { alert(e.message); }
    renderGroups();
  };
  $("#side").replaceChildren(h("div", { class: "panel" },
    h("form", { id: "create-group", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("POST", "groups", { groupName: $("#group-name").value });
        touch(convKey("g", r.groupInfo.groupID), "g", r.groupInfo.groupID, r.groupInfo.groupName, null, Date.now());
        showGroup(r.groupInfo.groupID);
      } catch (err) { alert(err.message); }
    } },
      h("label", { for: "group-name" }, t("groupName")),
      h("div", { class: "row" }, h("input", { id: "group-name", required: true, maxlength: "64" }),
        h("button", { class: "primary", type: "submit" }, t("createGroup")))),
    h("section", { id: "invitations" }, h("h2", {}, t("invitations")), h("ul", { class: "list" },
      ...inv.invitations.map((i) => h("li", { class: "invitation" },
        h("div", { class: "title" }, i.groupInfo.groupName), h("div", { class: "muted" }, i.inviter),
        h("div", { class: "row" }, h("button", { class: "primary accept", onclick: answer(i, true) }, t("accept")),
          h("button", { class: "decline", onclick: answer(i, false) }, t("decline"))))))),
    h("section", {}, h("h2", {}, t("groups")), h("ul", { class: "list", id: "group-list" },
      ...g.groups.map((e) => h("li", { tabindex: "0", "data-group": e.groupInfo.groupID,
        onclick: () => showGroup(e.groupInfo.groupID) },
        h("div", { class: "title" }, e.groupInfo.groupName),
        h("div", { class: "muted" }, e.groupInfo.groupMemberNum + " " + t("members") + " · " +
          roleName(e.userType))))))));
  if (state.openGroup) showGroup(state.openGroup);
  else $("#main").replaceChildren(h("p", { class: "empty" }, t("pick")));
}

function serverOf(id) { return id.slice(id.lastIndexOf("@") + 1); }

function roleName(type) { return type === 3 ? t("owner") : type === 2 ? t("admin") : t("member"); }

async function showGroup(groupID) {
  if (state.tab !== "groups" || !$("#group-list")) {
    state.tab = "groups"; state.openGroup = groupID; render(); return;  // renderGroups shows it
  }
  state.openGroup = groupID;
  let g;
  try { g = await api("GET", "groups/" + encodeURIComponent(groupID)); }
  catch (e) { $("#main").replaceChildren(h("p", { class: "error" }, e.message)); return; }
  const mine = (g.members || []).find((m) => m.userInfo.userID === state.me.userID);
  const myRole = mine ? mine.userType : 0;
  const act = (fn) => async () => { try { await fn(); } catch (e) { alert(e.message); } showGroup(groupID); };
  const base = "groups/" + encodeURIComponent(groupID);
  touch(convKey("g", groupID), "g", groupID, g.groupInfo.groupName, null, 0);
  $("#main").replaceChildren(h("div", { class: "panel", id: "group-panel" },
    h("div", { class: "row" }, h("h2", { id: "group-title" }, g.groupInfo.groupName),
      h("button", { class: "primary", id: "open-group-chat", onclick: () => openConv(convKey("g", groupID)) }, t("chat"))),
    myRole >= 2 ? h("form", { class: "row", id: "rename", onsubmit: (e) => { e.preventDefault();
      act(() => api("POST", base + "/info", { groupInfo: { groupName: $("#new-name").value } }))(); } },
      h("label", { for: "new-name" }, t("rename")), h("input", { id: "new-name", value: g.groupInfo.groupName }),
      h("button", { type: "submit" }, t("rename"))) : null,
    myRole >= 2 ? h("div", { class: "row", id: "settings" },
      h("input", { type: "checkbox", id: "is-allow", checked: g.gset && g.gset.isAllow === 1,
                   onchange: (e) => act(() => api("POST", base + "/info",
                     { gset: { isAllow: e.target.checked ? 1 : 2 } }))() }),
      h("label", { for: "is-allow" }, t("membersInvite")),
      h("input", { type: "checkbox", id: "is-visible", checked: g.gset && g.gset.isVisible === 1,
                   onchange: (e) => act(() => api("POST", base + "/info",
                     { gset: { isVisible: e.target.checked ? 1 : 2 } }))() }),
      h("label", { for: "is-visible" }, t("visible"))) : null,
    h("form", { class: "row", id: "invite", onsubmit: (e) => { e.preventDefault();
      const ids = $("#invite-ids").value.split(/[,\s]+/).filter(Boolean);
      act(() => api("POST", base + "/invite", { userIDs: ids }))(); } },
      h("label", { for: "invite-ids" }, t("inviteIds")), h("input", { id: "invite-ids" }),
      h("button", { type: "submit" }, t("invite"))),
    h("h2", {}, t("members")),
    h("ul", { class: "list members", id: "members" }, ...(g.members || []).map((m) => {
      const uid = m.userInfo.userID;
      const li = h("li", { "data-user": uid }, h("span", {}, (m.userInfo.name || uid) + " "),
        h("span", { class: "muted role" }, uid + " · " + roleName(m.userType)));
      if (myRole === 3 && uid !== state.me.userID) {
        // Admins and owners are users of the group's server (the standard's §6.4.2.1).
        if (serverOf(uid) === serverOf(groupID))
          li.append(h("button", { class: "admin", onclick: act(() => api("POST", base + "/admins", { userID: uid, admin: m.userType !== 2 })) },
                      m.userType === 2 ? t("unmakeAdmin") : t("makeAdmin")),
                    h("button", { class: "transfer", onclick: act(() => api("POST", base + "/transfer", { userID: uid })) }, t("transfer")));
        li.append(h("button", { class: "danger remove", onclick: act(() => api("POST", base + "/remove", { delateMembers: [uid] })) }, t("remove")));
      }
      return li;
    })),
    h("div", { class: "row" },
      myRole && myRole !== 3 ? h("button", { class: "danger", id: "quit", onclick: act(() => api("POST", base + "/quit")) }, t("quit")) : null,
      myRole === 3 ? h("button", { class: "danger", id: "dissolve", onclick: () => {
        if (confirm(t("confirmDissolve"))) act(() => api("POST", base + "/dissolve"))(); } }, t("dissolve")) : null)));
}

// -- start --

async function start() {
  try {
    const me = await api("GET", "me");
    state.me = me.userInfo; state.settings = me.settings || {};
    // Conversations and history come from the API as they are now; the events after this
    // seq keep them current (one seen twice is recognised by its messageID).
    state.since = me.lastEventSeq || 0;
  } catch (e) { if (state.token) renderSignIn(); return; }
  await loadConversations();
  render();
  poll();
}

document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
if (state.token) start(); else renderSignIn();
