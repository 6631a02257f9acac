// Hash routing: "#/projects/3/images?concept=ants" -> { path: "/projects/3/images", params: {...}, query: {...} }.
import { useEffect, useState } from "preact/hooks";

export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

export function match(pattern, path) {
  const p = pattern.split("/").filter(Boolean);
  const s = path.split("/").filter(Boolean);
  if (p.length !== s.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

export function href(path, query) {
  const qs = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export function navigate(path, query) {
  location.hash = href(path, query);
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const onChange = () => setRoute(parseHash());
    window.addEventListener("hashchange", onChange);
    onChange(); // the hash may have changed before this listener existed
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
