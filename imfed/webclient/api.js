// The node's client API (docs/client-api.md, docs/groups.md): calls, uploads, downloads.
"use strict";

export const session = { token: localStorage.getItem("imfed.token"), onSignedOut: () => {} };

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.error || body.desc)) || "HTTP " + status);
    this.status = status; this.body = body || {};
  }
}

export async function api(method, path, body, query) {
  const url = new URL("/api/v1/" + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) url.searchParams.set(k, v);
  const headers = {};
  if (session.token) headers.Authorization = "Bearer " + session.token;
  let data;
  if (body !== undefined) { headers["Content-Type"] = "application/json"; data = JSON.stringify(body); }
  let response;
  try {
    response = await fetch(url, { method, headers, body: data, credentials: "omit" });
  } catch (e) { throw new ApiError(0, {}); }
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 401 && path !== "login" && path !== "me/password") session.onSignedOut();
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

export const enc = encodeURIComponent;

export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/files?name=" + enc(file.name || "file"));
    xhr.setRequestHeader("Authorization", "Bearer " + session.token);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* */ }
      xhr.status === 200 ? resolve(body) : reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, {}));
    xhr.send(file);
  });
}

const blobs = new Map();

// A file as a blob: URL (kept for the page's life), fetched with the token.
export function fetchFile(fileID, onProgress) {
  if (blobs.has(fileID)) return blobs.get(fileID);
  const p = new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("GET", "/api/v1/files/" + enc(fileID));
    xhr.responseType = "blob";
    xhr.setRequestHeader("Authorization", "Bearer " + session.token);
    xhr.onprogress = (e) => onProgress && e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      if (xhr.status !== 200) { blobs.delete(fileID); reject(new ApiError(xhr.status, {})); return; }
      resolve({ url: URL.createObjectURL(xhr.response), blob: xhr.response });
    };
    xhr.onerror = () => { blobs.delete(fileID); reject(new ApiError(0, {})); };
    xhr.send();
  });
  blobs.set(fileID, p);
  return p;
}

const portraits = new Map();

// A user's portrait as a blob: URL, or null when they have none.
export function portrait(userID) {
  if (portraits.has(userID)) return portraits.get(userID);
  const p = fetch("/api/v1/users/" + enc(userID) + "/portrait",
                  { headers: { Authorization: "Bearer " + session.token }, credentials: "omit" })
    .then((r) => (r.ok ? r.blob().then((b) => URL.createObjectURL(b)) : null))
    .catch(() => null);
  portraits.set(userID, p);
  return p;
}

export function forgetPortrait(userID) { portraits.delete(userID); }

export function newTxnId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
