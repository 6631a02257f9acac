// The one door to the REST API: token header, JSON in and out, readable errors, upload progress.
const TOKEN_KEY = "visiontrain.token";
export const API = "/api/v1";

// The token lives in localStorage; it is mirrored into the `visiontrain_token` cookie, which the API
// also accepts, so that <img src> can load image bytes (an <img> cannot send a header).
const TOKEN_COOKIE = "visiontrain_token";
const setCookie = (value, maxAge) => (document.cookie = `${TOKEN_COOKIE}=${encodeURIComponent(value)}; path=/; max-age=${maxAge}; SameSite=Strict`);

export const auth = {
  get token() {
    return localStorage.getItem(TOKEN_KEY) || "";
  },
  set(token) {
    localStorage.setItem(TOKEN_KEY, token.trim());
    setCookie(token.trim(), 60 * 60 * 24 * 365);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    setCookie("", 0);
  },
  // Called at start: a token kept from an earlier visit needs its cookie back (cookies may be cleared).
  restore() {
    if (this.token) setCookie(this.token, 60 * 60 * 24 * 365);
  },
};

export const imageSrc = (projectId, imageId) => `${API}/projects/${projectId}/images/${imageId}/content`;
// Grids and galleries load a JPEG thumbnail (made once by the server, then cached by the browser). One
// size everywhere, so that each image has one stored thumbnail: cards are up to ~200 px wide, and twice
// that keeps them sharp on dense screens once cropped to a square.
// One of the sizes the server stores (128, 256, 512, 1024): cells are about 150-200 px, cropped to a square.
export const THUMB_SIDE = 512;
export const thumbnailSrc = (projectId, imageId) => `${imageSrc(projectId, imageId)}?max_side=${THUMB_SIDE}`;

export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

// FastAPI errors: {"detail": "text"} or {"detail": [{loc, msg}, ...]} (validation).
export function describeDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => {
        const where = (d.loc || []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${d.msg}` : d.msg;
      })
      .join("\n");
  }
  if (typeof detail === "object" && detail.message) return detail.message;
  return JSON.stringify(detail);
}

function onUnauthorized() {
  auth.clear();
  if (!location.hash.startsWith("#/login")) {
    location.hash = `#/login?next=${encodeURIComponent(location.hash.slice(1) || "/")}`;
  }
}

export function url(path, query) {
  const u = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

async function errorFrom(response) {
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch {
    detail = response.statusText;
  }
  if (response.status === 401) onUnauthorized();
  return new ApiError(response.status, describeDetail(detail) || `request failed (${response.status})`, detail);
}

export async function request(path, { method = "GET", body, query, signal, form } = {}) {
  const headers = { Authorization: `Bearer ${auth.token}` };
  let payload;
  if (form) payload = form;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "cannot reach the visiontrain server: is `visiontrain serve` running?");
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("application/json") ? response.json() : response.blob();
}

export const get = (path, query, opts) => request(path, { ...opts, query });
export const post = (path, body, opts) => request(path, { ...opts, method: "POST", body });
export const patch = (path, body) => request(path, { method: "PATCH", body });
export const put = (path, body) => request(path, { method: "PUT", body });
export const del = (path) => request(path, { method: "DELETE" });

// Multipart upload with progress (fetch cannot report upload progress; XMLHttpRequest can).
export function upload(path, formData, onProgress, query) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url(path, query));
    xhr.setRequestHeader("Authorization", `Bearer ${auth.token}`);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, "the upload was interrupted: check the connection to the server"));
    xhr.onload = () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) return resolve(data);
      if (xhr.status === 401) onUnauthorized();
      reject(new ApiError(xhr.status, describeDetail(data && data.detail) || `upload failed (${xhr.status})`, data && data.detail));
    };
    xhr.send(formData);
  });
}
