// The interface's words in English and Chinese; errors and times as a person reads them.
"use strict";

const STRINGS = {
  en: {
    signIn: "Sign in", signOut: "Sign out", login: "Phone number or user ID",
    password: "Password", badLogin: "Wrong login or password", chats: "Chats",
    contacts: "Contacts", groups: "Groups", send: "Send", message: "Message",
    attach: "Attach a file", image: "Image", file: "File", noChats: "No conversations yet",
    pick: "Pick a conversation", queued: "queued", sent: "sent", received: "",
    failed: "not delivered", retry: "Retry", recall: "Recall", recalled: "Message recalled",
    recalledBy: "{name} recalled a message", search: "Search people on every server",
    searchButton: "Search", add: "Add friend", noAnswer: "did not answer",
    incoming: "Requests to you", outgoing: "Your requests", accept: "Accept",
    decline: "Decline", friends: "Friends", chat: "Chat", remove: "Delete",
    noneYet: "None", noFriends: "No friends yet: find people with the search.",
    noGroups: "No groups yet: create one above.", newMessages: "New messages",
    pending: "pending", createGroup: "New group", groupName: "Group name", create: "Create",
    invitations: "Invitations", members: "Members", invite: "Invite",
    inviteFriends: "Invite friends", inviteOthers: "Or user IDs (comma separated)",
    quit: "Leave group", dissolve: "Dissolve", rename: "Rename", makeAdmin: "Make admin",
    unmakeAdmin: "Remove admin", transfer: "Make owner", owner: "Owner", admin: "Admin",
    member: "Member", connected: "Connected", reconnecting: "Reconnecting…",
    notify: "Turn on notifications", download: "Download", back: "Back",
    language: "Language", voice: "Record", stop: "Stop", older: "Older messages",
    requestSent: "Request sent", profile: "Profile", sentRequest: "wants to be your friend",
    uploadFailed: "Upload failed", confirmDissolve: "Dissolve \"{name}\" for everyone?",
    confirmDeleteFriend: "Delete {name} from your friends?",
    confirmRemoveMember: "Remove {name} from the group?",
    confirmQuit: "Leave \"{name}\"?", confirmRecall: "Recall this message?",
    settings: "Settings", membersInvite: "Members may invite", visible: "Found by search",
    reply: "Reply", forward: "Forward", forwardTo: "Forward to…", cancel: "Cancel",
    ok: "OK", close: "Close", emoji: "Emoji", pin: "Pin", unpin: "Unpin", mute: "Mute",
    unmute: "Unmute", muted: "muted", pinned: "pinned", today: "Today",
    yesterday: "Yesterday", justNow: "just now", minutesAgo: "{n} min",
    tooBig: "{name} is larger than {max}: not sent", announcement: "Announcement",
    editAnnouncement: "Set announcement", noAnnouncement: "No announcement",
    saved: "Saved", yourName: "Your name", yourPortrait: "Your picture", save: "Save",
    changePassword: "Change password", currentPassword: "Current password",
    newPassword: "New password (8 characters or more)", passwordChanged:
      "Password changed; your other sessions were signed out",
    goneDissolved: "This group was dissolved.", goneRemoved: "You are no longer in this group.",
    joined: "{who} joined", removed: "{who} left the group", renamed: "{who} renamed the group to \"{name}\"",
    madeAdmin: "{who} is now an admin", unmadeAdmin: "{who} is no longer an admin",
    transferred: "{who} is now the owner", dissolvedLine: "{who} dissolved the group",
    announced: "{who} set the announcement: {text}", settingsChanged: "{who} changed the group's settings",
    filterChats: "Find a chat", searchMessages: "Search messages", noResults: "Nothing found",
    searchFor: "Search messages for “{q}”",
    mentionedYou: "mentioned you", dropHere: "Drop files to send", viewer: "Image",
    shortcuts: "Shortcuts: Alt+K find a chat, Alt+↑/↓ previous/next chat, Esc close",
    error: "Something went wrong ({code})", offline: "The server cannot be reached; try again",
    quote: "Quote",
  },
  zh: {
    signIn: "登录", signOut: "退出登录", login: "手机号或用户ID", password: "密码",
    badLogin: "账号或密码错误", chats: "会话", contacts: "联系人", groups: "群组",
    send: "发送", message: "消息", attach: "发送文件", image: "图片", file: "文件",
    noChats: "还没有会话", pick: "选择一个会话", queued: "排队中", sent: "已送达",
    received: "", failed: "发送失败", retry: "重试", recall: "撤回",
    recalled: "消息已撤回", recalledBy: "{name}撤回了一条消息",
    search: "在所有服务器上查找用户", searchButton: "搜索", add: "加为好友",
    noAnswer: "未响应", incoming: "收到的请求", outgoing: "发出的请求", accept: "同意",
    decline: "拒绝", friends: "好友", chat: "发消息", remove: "删除", pending: "等待中",
    noneYet: "无", noFriends: "还没有好友：用搜索找人。", noGroups: "还没有群组：在上方创建一个。", newMessages: "以下为新消息",
    createGroup: "创建群组", groupName: "群名称", create: "创建", invitations: "群邀请",
    members: "成员", invite: "邀请", inviteFriends: "邀请好友",
    inviteOthers: "或输入用户ID（逗号分隔）", quit: "退出群组", dissolve: "解散群组",
    rename: "修改群名", makeAdmin: "设为管理员", unmakeAdmin: "取消管理员",
    transfer: "转让群主", owner: "群主", admin: "管理员", member: "成员",
    connected: "已连接", reconnecting: "正在重新连接…", notify: "开启通知", download: "下载",
    back: "返回", language: "语言", voice: "录音", stop: "停止", older: "更早的消息",
    requestSent: "请求已发送", profile: "个人资料", sentRequest: "请求加你为好友",
    uploadFailed: "上传失败", confirmDissolve: "确定为所有人解散“{name}”？",
    confirmDeleteFriend: "确定删除好友 {name}？", confirmRemoveMember: "确定将 {name} 移出群组？",
    confirmQuit: "确定退出“{name}”？", confirmRecall: "确定撤回这条消息？",
    settings: "设置", membersInvite: "成员可邀请", visible: "可被搜索", reply: "回复",
    forward: "转发", forwardTo: "转发给…", cancel: "取消", ok: "确定", close: "关闭",
    emoji: "表情", pin: "置顶", unpin: "取消置顶", mute: "免打扰", unmute: "取消免打扰",
    muted: "免打扰", pinned: "置顶", today: "今天", yesterday: "昨天", justNow: "刚刚",
    minutesAgo: "{n}分钟前", tooBig: "{name} 超过 {max}，未发送", announcement: "群公告",
    editAnnouncement: "发布群公告", noAnnouncement: "暂无群公告", saved: "已保存",
    yourName: "昵称", yourPortrait: "头像", save: "保存", changePassword: "修改密码",
    currentPassword: "当前密码", newPassword: "新密码（至少8位）",
    passwordChanged: "密码已修改，其他设备已退出登录", goneDissolved: "该群已解散。",
    goneRemoved: "你已不在该群中。", joined: "{who} 加入了群聊", removed: "{who} 离开了群聊",
    renamed: "{who} 将群名改为“{name}”", madeAdmin: "{who} 成为管理员",
    unmadeAdmin: "{who} 不再是管理员", transferred: "{who} 成为群主",
    dissolvedLine: "{who} 解散了该群", announced: "{who} 发布了群公告：{text}",
    settingsChanged: "{who} 修改了群设置", filterChats: "查找会话", searchMessages: "搜索聊天记录",
    searchFor: "搜索聊天记录：“{q}”",
    noResults: "没有找到", mentionedYou: "提到了你", dropHere: "松开即可发送",
    viewer: "图片", shortcuts: "快捷键：Alt+K 查找会话，Alt+↑/↓ 上一个/下一个会话，Esc 关闭",
    error: "操作失败（{code}）", offline: "无法连接服务器，请稍后重试", quote: "引用",
  },
};

// What an error code of the API means to a person (docs/client-api.md); never an ID.
const ERRORS = {
  en: {
    bad_login: "Wrong login or password", throttled: "Too many tries; wait a moment",
    not_friends: "You are not friends", strangers_refused: "This person takes messages from friends only",
    refuses_friends: "This person does not take friend requests", already_friends: "Already friends",
    peer_unreachable: "Their server cannot be reached now", recall_window_passed: "Too late to recall",
    not_sender: "Only the sender can recall it", not_admin: "Only the owner or an admin can do that",
    not_owner: "Only the owner can do that", not_member: "You are not in this group",
    unknown_group: "This group no longer exists", unknown_user: "No such user",
    too_large: "The file is too large", empty_file: "The file is empty", owner_quits:
      "The owner cannot leave; make someone else owner or dissolve it", invites_closed:
      "Members may not invite in this group", wrong_password: "The current password is wrong",
    bad_newPassword: "The new password needs 8 characters or more", bad_portrait:
      "That is not an image", not_master_user: "Only users of the group's server can have that role",
    unknown_message: "That message is gone", user_exists: "Already there",
  },
  zh: {
    bad_login: "账号或密码错误", throttled: "尝试次数过多，请稍候", not_friends: "你们还不是好友",
    strangers_refused: "对方只接收好友的消息", refuses_friends: "对方不接受好友请求",
    already_friends: "已经是好友", peer_unreachable: "暂时无法连接对方服务器",
    recall_window_passed: "已超过撤回时间", not_sender: "只有发送者可以撤回",
    not_admin: "只有群主或管理员可以操作", not_owner: "只有群主可以操作",
    not_member: "你不在该群中", unknown_group: "该群已不存在", unknown_user: "没有这个用户",
    too_large: "文件太大", empty_file: "文件为空", owner_quits: "群主不能退群，请先转让或解散",
    invites_closed: "该群不允许成员邀请", wrong_password: "当前密码错误",
    bad_newPassword: "新密码至少需要8位", bad_portrait: "这不是图片",
    not_master_user: "只有该群所在服务器的用户可以担任", unknown_message: "该消息已不存在",
    user_exists: "已存在",
  },
};

export const i18n = {
  lang: localStorage.getItem("imfed.lang") ||
        ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en"),
};

export function setLang(lang) {
  i18n.lang = lang;
  localStorage.setItem("imfed.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function t(key, vars) {
  let s = (STRINGS[i18n.lang] || STRINGS.en)[key] ?? STRINGS.en[key] ?? key;
  for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
  return s;
}

// An error as the interface says it: known codes in words; otherwise the code alone (the
// server's English text may carry IDs); a broken connection as such.
export function errorText(err) {
  if (!err || !err.status) return t("offline");
  const code = (err.body && err.body.errcode) || "";
  const known = (ERRORS[i18n.lang] || ERRORS.en)[code];
  return known || t("error", { code: code || "HTTP " + err.status });
}

function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() &&
         a.getDate() === b.getDate();
}

// A day as a separator line says it: today, yesterday, or the date.
export function dayLabel(ms) {
  const d = new Date(ms), now = new Date();
  if (sameDay(d, now)) return t("today");
  const y = new Date(now); y.setDate(now.getDate() - 1);
  if (sameDay(d, y)) return t("yesterday");
  return d.toLocaleDateString(i18n.lang === "zh" ? "zh-CN" : "en",
    { year: d.getFullYear() === now.getFullYear() ? undefined : "numeric",
      month: "short", day: "numeric", weekday: "short" });
}

// A time in the conversation list: "just now", minutes, the time today, else the day.
export function shortTime(ms) {
  if (!ms) return "";
  const ago = Date.now() - ms;
  if (ago < 60000) return t("justNow");
  if (ago < 3600000) return t("minutesAgo", { n: Math.floor(ago / 60000) });
  const d = new Date(ms);
  if (sameDay(d, new Date())) return clock(ms);
  return dayLabel(ms);
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString(i18n.lang === "zh" ? "zh-CN" : "en",
                                         { hour: "2-digit", minute: "2-digit" });
}

export function size(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MB";
  if (n >= 1024) return (n / 1024).toFixed(1) + " KB";
  return n + " B";
}
