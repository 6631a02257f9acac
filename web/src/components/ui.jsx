// Small shared pieces: loading and empty states, error notes, authenticated images, data hooks.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { imageSrc, thumbnailSrc } from "../api.js";

export function Spinner({ label = "Loading…" }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" />
      {label}
    </div>
  );
}

export function Empty({ title, children, action }) {
  return (
    <div class="empty">
      <h3>{title}</h3>
      {children && <p>{children}</p>}
      {action}
    </div>
  );
}

export function ErrorNote({ error, onRetry }) {
  if (!error) return null;
  return (
    <div class="error-note" role="alert">
      <pre>{error.message || String(error)}</pre>
      {onRetry && (
        <button class="btn small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

// Runs an async loader on mount and whenever deps change; exposes data, error, loading, reload.
export function useAsync(loader, deps) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    Promise.resolve()
      .then(loader)
      .then(
        (data) => mine === generation.current && setState({ data, error: null, loading: false }),
        (error) => mine === generation.current && setState((s) => ({ data: s.data, error, loading: false })),
      );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

// Polls while `active`; the loader's result is kept between polls (no flicker).
export function usePolling(loader, deps, { interval = 1500, active = true } = {}) {
  const result = useAsync(loader, deps);
  useEffect(() => {
    if (!active) return undefined;
    const id = setInterval(result.reload, interval);
    return () => clearInterval(id);
  }, [active, result.reload, interval]);
  return result;
}

// An image of the project (the token travels in the cookie); a placeholder while it loads or if it fails.
// `thumbnail`: a small JPEG for grids instead of the original file.
export function ProjectImage({ projectId, imageId, alt, thumbnail = false, ...rest }) {
  const [state, setState] = useState("loading");
  return (
    <>
      {state === "failed" && <div class="img-missing">image could not be loaded</div>}
      <img
        src={thumbnail ? thumbnailSrc(projectId, imageId) : imageSrc(projectId, imageId)}
        alt={alt}
        decoding="async"
        onLoad={() => setState("ok")}
        onError={() => setState("failed")}
        class={state === "loading" ? "img-loading" : ""}
        style={state === "failed" ? { display: "none" } : undefined}
        {...rest}
      />
    </>
  );
}

// The CSS width that draws a photo of width x height pixels at a working height (small files scaled up,
// large ones down, never wider than its box); its height follows from its own proportions.
export const PHOTO_HEIGHT = "clamp(320px, 100vh - 280px, 640px)";
export function photoWidth(width, height) {
  if (!width || !height) return undefined;
  return `min(100%, calc(${PHOTO_HEIGHT} * ${(width / height).toFixed(4)}))`;
}

export function Badge({ status }) {
  return <span class={`badge ${status || "unknown"}`}>{(status || "unknown").replace(/_/g, " ")}</span>;
}

export function Tabs({ items, active }) {
  return (
    <nav class="tabs">
      {items.map((t) => (
        <a href={t.href} class={t.key === active ? "active" : ""} key={t.key}>
          {t.label}
        </a>
      ))}
    </nav>
  );
}

export const fmt = {
  percent: (v, digits = 1) => (v == null || Number.isNaN(v) ? "—" : `${(v * 100).toFixed(digits)}%`),
  number: (v, digits = 3) => (v == null ? "—" : Number(v).toPrecision(digits)),
  duration(seconds) {
    if (seconds == null) return "—";
    const s = Math.round(seconds);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
  },
  date: (iso) => (iso ? new Date(iso).toLocaleString() : "—"),
};
