// Groups: creating one, invitations, and a group's page (members and their roles, inviting
// friends, the announcement, settings, leaving and dissolving, with a confirmation first).
"use strict";

import { api, enc } from "./api.js";
import { $, avatar, confirmAction, h, toast } from "./dom.js";
import { errorText, t } from "./i18n.js";
import { emit, groupDetails, learn, nameOf, on, state, touchConv } from "./state.js";

function roleName(type) { return type === 3 ? t("owner") : type === 2 ? t("admin") : t("member"); }
function serverOf(id) { return id.slice(id.lastIndexOf("@") + 1); }

export function renderGroups(side, main, go, openGroup) {
  const draw = () => drawSide(side, go).catch((e) => toast(errorText(e), true));
  draw();
  if (openGroup) showGroup(main, openGroup, go);
  else main.replaceChildren(h("p", { class: "empty" }, t("pick")));
  const offs = [on("groups", draw),
                on("group", (gid) => { if (gid === openGroup) showGroup(main, gid, go, true); })];
  return () => offs.forEach((off) => off());
}

async function drawSide(side, go) {
  const [g, inv] = await Promise.all([api("GET", "groups"), api("GET", "groups/invitations")]);
  const answer = (i, agree) => async () => {
    try {
      const r = await api("POST", "groups/invitations/" + enc(i.invitationID) + "/answer", { agree });
      if (agree) { touchConv("g", r.groupID, i.groupInfo.groupName); go("#/group/" + enc(r.groupID)); }
    } catch (e) { toast(errorText(e), true); }
    emit("groups");
  };
  const groups = g.groups.slice().sort((a, b) =>
    ((b.last && b.last.createTime) || b.groupInfo.createTime) - ((a.last && a.last.createTime) || a.groupInfo.createTime));
  side.replaceChildren(h("div", { class: "panel" },
    h("form", { id: "create-group", onsubmit: async (e) => {
      e.preventDefault();
      try {
        const r = await api("POST", "groups", { groupName: $("#group-name").value });
        touchConv("g", r.groupInfo.groupID, r.groupInfo.groupName);
        go("#/group/" + enc(r.groupInfo.groupID));
      } catch (err) { toast(errorText(err), true); }
    } },
      h("label", { for: "group-name" }, t("groupName")),
      h("div", { class: "row" }, h("input", { id: "group-name", required: true, maxlength: "64" }),
        h("button", { class: "primary", type: "submit" }, t("createGroup")))),
    inv.invitations.length ? h("section", { id: "invitations" }, h("h2", {}, t("invitations")), h("ul", { class: "list" },
      ...inv.invitations.map((i) => h("li", { class: "invitation" },
        h("div", { class: "title" }, i.groupInfo.groupName),
        h("div", { class: "muted" }, nameOf(typeof i.inviter === "string" ? i.inviter : (i.inviter || {}).userID)),
        h("div", { class: "row" }, h("button", { class: "primary accept", onclick: answer(i, true) }, t("accept")),
          h("button", { class: "decline", onclick: answer(i, false) }, t("decline")))))))
      : h("section", { id: "invitations" }),
    h("section", {}, h("h2", {}, t("groups")), h("ul", { class: "list", id: "group-list" },
      groups.length ? null : h("li", { class: "none" }, t("noGroups")),
      ...groups.map((e) => h("li", { tabindex: "0", "data-group": e.groupInfo.groupID, class: "conv",
        onclick: () => go("#/group/" + enc(e.groupInfo.groupID)),
        onkeydown: (ev) => { if (ev.key === "Enter") go("#/group/" + enc(e.groupInfo.groupID)); } },
        avatar(e.groupInfo.groupID, e.groupInfo.groupName, null, false, true),
        h("div", { class: "conv-body" }, h("div", { class: "title" }, e.groupInfo.groupName),
          h("div", { class: "muted member-count" }, e.groupInfo.groupMemberNum + " " + t("members") + " · " +
            roleName(e.userType)))))))));
}

async function showGroup(main, groupID, go, fresh) {
  let g;
  try { g = await groupDetails(groupID, true); }
  catch (e) { main.replaceChildren(h("p", { class: "error" }, errorText(e))); return; }
  const myRole = g.myRole;
  const base = "groups/" + enc(groupID);
  const act = (fn) => async () => {
    try { await fn(); } catch (e) { toast(errorText(e), true); }
    showGroup(main, groupID, go, true);
  };
  touchConv("g", groupID, g.name);
  const friendsBox = h("div", { id: "invite-friends", class: "checks" });
  api("GET", "friends").then((f) => {
    const inGroup = new Set(g.members.map((m) => m.userInfo.userID));
    const can = f.friends.filter((x) => !inGroup.has(x.userID));
    for (const x of can) learn(x.userInfo);
    friendsBox.replaceChildren(...can.map((x) => h("label", { class: "check" },
      h("input", { type: "checkbox", value: x.userID, name: "invitee" }), " " + nameOf(x.userID))));
  }).catch(() => {});
  const notice = g.notice;
  main.replaceChildren(h("div", { class: "panel", id: "group-panel" },
    h("div", { class: "row" }, avatar(groupID, g.name, null, false, true),
      h("h2", { id: "group-title" }, g.name), h("span", { class: "muted", id: "group-count" }, g.info.groupMemberNum + " " + t("members")),
      h("button", { class: "primary", id: "open-group-chat", onclick: () => go("#/chat/g/" + enc(groupID)) }, t("chat"))),
    h("section", { id: "group-notice" }, h("h3", {}, t("announcement")),
      h("p", { class: notice ? "" : "muted" }, notice ? notice.text : t("noAnnouncement")),
      myRole >= 2 ? h("form", { id: "notice-form", onsubmit: (e) => { e.preventDefault();
        act(() => api("PUT", base + "/announcement", { text: $("#notice-text").value }))(); } },
        h("label", { for: "notice-text" }, t("editAnnouncement")),
        h("textarea", { id: "notice-text", maxlength: "2000" }, notice ? notice.text : ""),
        h("button", { type: "submit" }, t("save"))) : null),
    myRole >= 2 ? h("form", { class: "row", id: "rename", onsubmit: (e) => { e.preventDefault();
      act(() => api("POST", base + "/info", { groupInfo: { groupName: $("#new-name").value } }))(); } },
      h("label", { for: "new-name" }, t("rename")), h("input", { id: "new-name", value: g.name, maxlength: "64" }),
      h("button", { type: "submit" }, t("rename"))) : null,
    myRole >= 2 ? h("div", { class: "row", id: "settings" },
      h("input", { type: "checkbox", id: "is-allow", checked: g.gset.isAllow === 1,
                   onchange: (e) => act(() => api("POST", base + "/info", { gset: { isAllow: e.target.checked ? 1 : 2 } }))() }),
      h("label", { for: "is-allow" }, t("membersInvite")),
      h("input", { type: "checkbox", id: "is-visible", checked: g.gset.isVisible === 1,
                   onchange: (e) => act(() => api("POST", base + "/info", { gset: { isVisible: e.target.checked ? 1 : 2 } }))() }),
      h("label", { for: "is-visible" }, t("visible"))) : null,
    myRole ? h("form", { id: "invite", onsubmit: (e) => { e.preventDefault();
      const ids = [...friendsBox.querySelectorAll("input:checked")].map((x) => x.value)
        .concat($("#invite-ids").value.split(/[,\s，]+/).filter(Boolean));
      if (ids.length) act(() => api("POST", base + "/invite", { userIDs: ids }))(); } },
      h("h3", {}, t("inviteFriends")), friendsBox,
      h("label", { for: "invite-ids" }, t("inviteOthers")), h("input", { id: "invite-ids" }),
      h("button", { type: "submit" }, t("invite"))) : null,
    h("h3", {}, t("members")),
    h("ul", { class: "list members", id: "members" }, ...g.members.map((m) => {
      const uid = m.userInfo.userID;
      const li = h("li", { "data-user": uid }, avatar(uid, m.userInfo.name || nameOf(uid), null, true),
        h("span", { class: "member-name" }, m.userInfo.name || nameOf(uid)),
        h("span", { class: "muted role" }, roleName(m.userType)));
      if (myRole === 3 && uid !== state.me.userID) {
        // Admins and owners are users of the group's server (the standard's §6.4.2.1).
        if (serverOf(uid) === serverOf(groupID))
          li.append(h("button", { class: "admin", onclick: act(() => api("POST", base + "/admins", { userID: uid, admin: m.userType !== 2 })) },
                      m.userType === 2 ? t("unmakeAdmin") : t("makeAdmin")),
                    h("button", { class: "transfer", onclick: async () => {
                      if (await confirmAction(t("transfer") + ": " + nameOf(uid) + "?", t("transfer")))
                        act(() => api("POST", base + "/transfer", { userID: uid }))(); } }, t("transfer")));
        li.append(h("button", { class: "danger remove", onclick: async () => {
          if (await confirmAction(t("confirmRemoveMember", { name: m.userInfo.name || nameOf(uid) }), t("remove")))
            act(() => api("POST", base + "/remove", { delateMembers: [uid] }))(); } }, t("remove")));
      }
      return li;
    })),
    h("div", { class: "row" },
      myRole && myRole !== 3 ? h("button", { class: "danger", id: "quit", onclick: async () => {
        if (await confirmAction(t("confirmQuit", { name: g.name }), t("quit")))
          act(() => api("POST", base + "/quit"))(); } }, t("quit")) : null,
      myRole === 3 ? h("button", { class: "danger", id: "dissolve", onclick: async () => {
        if (await confirmAction(t("confirmDissolve", { name: g.name }), t("dissolve")))
          act(() => api("POST", base + "/dissolve"))(); } }, t("dissolve")) : null)));
}
