// People: finding them on every server, friend requests, friends; one's own profile and
// password.
"use strict";

import { api, enc, forgetPortrait, portrait, upload } from "./api.js";
import { $, avatar, confirmAction, h, toast } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { emit, learn, nameOf, on, state, touchConv } from "./state.js";

function person(userID, name, extra) {
  const el = avatar(userID, name || nameOf(userID), null);
  portrait(userID).then((url) => { if (url) el.append(h("img", { alt: "", src: url })); });
  return h("div", { class: "person" }, el,
    h("div", {}, h("div", { class: "title" }, name || nameOf(userID)),
      h("div", { class: "muted" }, extra || userID)));
}

export function renderContacts(side, main, go) {
  const results = h("div", { id: "search-results", "aria-live": "polite" });
  side.replaceChildren(h("div", { class: "panel" },
    h("form", { id: "search", onsubmit: async (e) => {
      e.preventDefault();
      results.replaceChildren(h("p", { class: "muted" }, "…"));
      try {
        const r = await api("GET", "users/search", undefined, { q: $("#q").value });
        r.users.forEach(learn);
        results.replaceChildren(h("ul", { class: "list" }, ...r.users.map((u) => h("li", { class: "user" },
          person(u.userID, u.name),
          u.userID === state.me.userID ? null : h("button", { class: "add", onclick: async (ev) => {
            try {
              await api("POST", "friends/requests", { userID: u.userID, remark: "" });
              ev.target.replaceWith(h("span", { class: "muted" }, t("requestSent")));
              emit("contacts");
            } catch (err) { toast(errorText(err), true); }
          } }, t("add"))))));
        if (!r.users.length) results.append(h("p", { class: "muted" }, t("noResults")));
        const silent = Object.entries(r.servers).filter(([, v]) => v !== "ok");
        if (silent.length)
          results.append(h("p", { class: "muted", id: "silent-servers" },
            silent.map(([s]) => s + " " + t("noAnswer")).join("; ")));
      } catch (err) { results.replaceChildren(h("p", { class: "error" }, errorText(err))); }
    } },
      h("label", { for: "q" }, t("search")),
      h("div", { class: "row" }, h("input", { id: "q", required: true, type: "search" }),
        h("button", { class: "primary", type: "submit" }, t("searchButton")))),
    results));
  const draw = () => drawContacts(main, go).catch((e) => toast(errorText(e), true));
  draw();
  return on("contacts", draw);
}

// A list's items drawn, or one line saying there are none.
function each(items, noneText, draw) {
  return items.length ? items.map(draw) : [h("li", { class: "none" }, t(noneText))];
}

async function drawContacts(main, go) {
  const [requests, friends] = await Promise.all([api("GET", "friends/requests"), api("GET", "friends")]);
  const incoming = requests.requests.filter((r) => r.direction === "incoming");
  const outgoing = requests.requests.filter((r) => r.direction === "outgoing");
  for (const f of friends.friends) learn(f.userInfo);
  for (const r of incoming) learn(r.fromInfo);
  const answer = (r, agree) => async () => {
    try { await api("POST", "friends/requests/" + enc(r.requestID) + "/answer", { agree }); }
    catch (e) { toast(errorText(e), true); }
    emit("contacts");
  };
  main.replaceChildren(h("div", { class: "panel" },
    profileSection(),
    h("section", { id: "incoming" }, h("h2", {}, t("incoming")), h("ul", { class: "list" },
      ...each(incoming, "noneYet", (r) => h("li", { class: "request" },
        person(r.from, (r.fromInfo && r.fromInfo.name) || nameOf(r.from), r.remark || r.from),
        h("div", { class: "row" }, h("button", { class: "primary accept", onclick: answer(r, true) }, t("accept")),
          h("button", { class: "decline", onclick: answer(r, false) }, t("decline"))))))),
    h("section", { id: "outgoing" }, h("h2", {}, t("outgoing")), h("ul", { class: "list" },
      ...each(outgoing, "noneYet", (r) => h("li", {}, person(r.to, nameOf(r.to), t("pending")))))),
    h("section", { id: "friends" }, h("h2", {}, t("friends")), h("ul", { class: "list" },
      ...each(friends.friends, "noFriends", (f) => h("li", { class: "friend", "data-user": f.userID },
        person(f.userID, (f.userInfo && f.userInfo.name) || nameOf(f.userID),
               [f.userInfo && f.userInfo.phoneNumber, f.userID].filter(Boolean).join(" · ")),
        h("div", { class: "row" },
          h("button", { class: "chat-with primary", onclick: () => {
            touchConv("u", f.userID); go("#/chat/u/" + enc(f.userID)); } }, t("chat")),
          h("button", { class: "danger delete-friend", onclick: async () => {
            if (!(await confirmAction(t("confirmDeleteFriend", { name: nameOf(f.userID) }), t("remove")))) return;
            try { await api("POST", "friends/delete", { userID: f.userID }); } catch (e) { toast(errorText(e), true); }
            emit("contacts"); } }, t("remove")))))))));
}

function profileSection() {
  const me = state.me;
  const pic = h("input", { type: "file", id: "portrait-file", accept: "image/png,image/jpeg,image/gif,image/webp" });
  const mine = avatar(me.userID, me.name, null);
  portrait(me.userID).then((url) => { if (url) mine.append(h("img", { alt: "", src: url })); });
  return h("section", { id: "profile" }, h("h2", {}, t("profile")),
    h("div", { class: "person" }, mine, h("div", {}, h("div", { class: "title" }, me.name),
      h("div", { class: "muted" }, [me.phoneNumber, me.userID].filter(Boolean).join(" · ")))),
    h("form", { id: "profile-form", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const change = {};
        const name = $("#my-name").value.trim();
        if (name && name !== me.name) change.name = name;
        const file = pic.files[0];
        if (file) change.portrait = (await upload(file)).fileID;
        if (!Object.keys(change).length) return;
        const r = await api("PUT", "me", change);
        state.me = r.userInfo; forgetPortrait(me.userID);
        toast(t("saved")); emit("me"); emit("contacts");
      } catch (err) { toast(errorText(err), true); }
    } },
      h("label", { for: "my-name" }, t("yourName")),
      h("input", { id: "my-name", value: me.name, maxlength: "64", required: true }),
      h("label", { for: "portrait-file" }, t("yourPortrait")), pic,
      h("div", { class: "row" }, h("button", { class: "primary", type: "submit", id: "save-profile" }, t("save")))),
    h("details", {}, h("summary", {}, t("changePassword")),
      h("form", { id: "password-form", onsubmit: async (e) => {
        e.preventDefault();
        try {
          await api("POST", "me/password", { password: $("#old-password").value, newPassword: $("#new-password").value });
          $("#old-password").value = ""; $("#new-password").value = "";
          toast(t("passwordChanged"));
        } catch (err) { toast(errorText(err), true); }
      } },
        h("label", { for: "old-password" }, t("currentPassword")),
        h("input", { id: "old-password", type: "password", autocomplete: "current-password", required: true }),
        h("label", { for: "new-password" }, t("newPassword")),
        h("input", { id: "new-password", type: "password", autocomplete: "new-password", minlength: "8", required: true }),
        h("div", { class: "row" }, h("button", { class: "primary", type: "submit" }, t("changePassword"))))));
}
