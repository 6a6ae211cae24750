// Building the page. Every string from a user or a server reaches it as text (h() makes text
// nodes), never as HTML; links are made by hand, http(s) only.
"use strict";

import { t } from "./i18n.js";

export function h(tag, attrs, ...children) {
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

export function $(sel, root) { return (root || document).querySelector(sel); }

const URL_RE = /\bhttps?:\/\/[^\s<>"'）」】]+[^\s<>"'.,;:!?）」】)]/g;

// Text with its web addresses as links (opened apart, no referrer) and, given names, the
// @mentions of them marked; everything else stays text.
export function richText(text, mentionNames, myName) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    if (m.index > last) out.push(...mentions(text.slice(last, m.index), mentionNames, myName));
    out.push(h("a", { href: m[0], target: "_blank", rel: "noopener noreferrer nofollow" }, m[0]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...mentions(text.slice(last), mentionNames, myName));
  return out;
}

function mentions(text, names, myName) {
  if (!names || !text.includes("@")) return [text];
  const out = [];
  let rest = text;
  while (rest) {
    const at = rest.indexOf("@");
    if (at < 0) { out.push(rest); break; }
    const name = names.find((n) => n && rest.startsWith(n, at + 1));
    if (!name) { out.push(rest.slice(0, at + 1)); rest = rest.slice(at + 1); continue; }
    if (at) out.push(rest.slice(0, at));
    out.push(h("span", { class: "mention" + (name === myName ? " me" : "") }, "@" + name));
    rest = rest.slice(at + 1 + name.length);
  }
  return out;
}

// A person's or a group's picture: the image when there is one, else initials on a colour
// taken from the ID (the same person, the same colour everywhere).
export function avatar(id, name, url, small, group) {
  const letters = initials(name || id || "?", group);
  let hue = 0;
  for (const ch of id || "") hue = (hue * 31 + ch.charCodeAt(0)) % 360;
  const el = h("span", { class: "avatar" + (small ? " small" : ""), "aria-hidden": "true",
                         "data-user": id, style: null }, letters);
  el.style.setProperty("--hue", String(hue));
  if (url) {
    const img = h("img", { alt: "", src: url });
    img.addEventListener("error", () => img.remove());
    el.append(img);
  }
  return el;
}

function initials(name, group) {
  const s = name.replace(/@.*$/, "").trim();
  // Chinese: a person by the end of the name (欧阳娜娜 -> 娜娜), a group by its start
  // (跨服务器 team -> 跨服).
  const han = /[\u4e00-\u9fff]+/.exec(s);
  if (han) return group ? han[0].slice(0, 2) : han[0].slice(-2);
  const words = s.split(/\s+/).filter(Boolean);
  if (words.length > 1) return (words[0][0] + words[1][0]).toUpperCase();
  return s.slice(0, 2).toUpperCase();
}

// A small dialog (confirm, choose): resolves with what was chosen, or null.
export function dialog(title, body, actions) {
  return new Promise((resolve) => {
    const back = document.activeElement;
    const close = (value) => { wrap.remove(); if (back && back.focus) back.focus(); resolve(value); };
    const box = h("div", { class: "dialog", role: "dialog", "aria-modal": "true",
                           "aria-label": title },
      h("h2", {}, title), body || null,
      h("div", { class: "row end" }, ...actions.map(([label, value, cls]) =>
        h("button", { class: cls || "", "data-value": String(value),
                      onclick: () => close(value) }, label))));
    const wrap = h("div", { class: "overlay", onclick: (e) => { if (e.target === wrap) close(null); },
                            onkeydown: (e) => { if (e.key === "Escape") { e.stopPropagation(); close(null); } } },
      box);
    document.body.append(wrap);
    const first = box.querySelector("input, textarea, select, button.primary") ||
                  box.querySelector("button");
    if (first) first.focus();
    box._close = close;
  });
}

export function confirmAction(text, okLabel) {
  return dialog(text, null, [[t("cancel"), false], [okLabel || t("ok"), true, "primary danger"]]);
}

// A short note at the bottom of the screen (errors included), said to screen readers.
export function toast(text, bad) {
  const region = $("#toasts");
  if (!region) return;
  const note = h("div", { class: "toast" + (bad ? " bad" : ""), role: bad ? "alert" : "status" }, text);
  region.append(note);
  setTimeout(() => note.remove(), bad ? 6000 : 3000);
}
