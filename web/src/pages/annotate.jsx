// Annotate: classification (click or number key, next image follows), tagging (toggle concepts, or
// "without concept"), detection (draw, move, resize, delete boxes). Keyboard first.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, imageSrc } from "../api.js";
import { href, navigate } from "../router.js";
import { BoxEditor, conceptColor } from "../components/box-editor.jsx";
import { loadAnnotation, saveAnnotation } from "../components/annotation.js";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Empty, ErrorNote, Spinner, photoWidth, useAsync } from "../components/ui.jsx";
import { AddConcept, Shortcuts } from "../components/annotate-help.jsx";

const QUEUE_SIZE = 1000; // the most the API lists at once

function Annotator({ project, view, reloadView, query }) {
  const base = viewBase(project.id, view.id);
  const queue = useAsync(
    () =>
      get(`/projects/${project.id}/images`, {
        view_id: view.id,
        unannotated: query.status === "unannotated" ? true : query.status === "annotated" ? false : undefined,
        concept_id: query.concept,
        limit: QUEUE_SIZE,
      }),
    [project.id, view.id, query.status, query.concept],
  );
  const items = queue.data ? queue.data.items : null;
  const [index, setIndex] = useState(0);
  const [state, setState] = useState(null); // the current image's annotation being edited
  const [dirty, setDirty] = useState(false);
  const [selected, setSelected] = useState(null);
  const [drawConcept, setDrawConcept] = useState(view.concepts[0] ? view.concepts[0].name : null);
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  const [done, setDone] = useState(0);

  // Start at ?image= when given.
  useEffect(() => {
    if (items && query.image) {
      const i = items.findIndex((it) => String(it.id) === String(query.image));
      if (i >= 0) setIndex(i);
    }
  }, [items]);

  const image = items && items[index];
  useEffect(() => {
    if (!image) return;
    let live = true;
    setState(null);
    setDirty(false);
    setSelected(null);
    setError(null);
    loadAnnotation(view.id, image.id).then(
      (a) => live && setState(a),
      (err) => live && setError(err),
    );
    // Warm the browser cache with the next image, so "next" is instant.
    const next = items[index + 1];
    if (next) new Image().src = imageSrc(project.id, next.id);
    return () => {
      live = false;
    };
  }, [image && image.id]);

  async function save(newState = state) {
    setSaving(true);
    try {
      const saved = await saveAnnotation(view.id, image.id, view.kind, newState);
      setState(saved);
      setDirty(false);
      setDone((n) => n + 1);
      return true;
    } catch (err) {
      setError(err);
      return false;
    } finally {
      setSaving(false);
    }
  }

  async function go(delta, saveFirst = dirty) {
    if (saveFirst && !(await save())) return;
    setIndex((i) => Math.max(0, Math.min(items.length, i + delta)));
  }

  async function pickClass(name) {
    const next = { ...state, concepts: [name] };
    setState(next);
    if (await save(next)) setIndex((i) => i + 1);
  }

  function toggleTag(name) {
    const has = state.concepts.includes(name);
    setState({ ...state, concepts: has ? state.concepts.filter((c) => c !== name) : [...state.concepts, name] });
    setDirty(true);
  }

  function setBoxes(boxes) {
    setState({ ...state, boxes });
    setDirty(true);
  }

  function chooseConcept(name) {
    setDrawConcept(name);
    if (view.kind === "detection" && selected != null) setBoxes(state.boxes.map((b, i) => (i === selected ? { ...b, concept: name } : b)));
  }

  // Keyboard shortcuts (ignored while typing in a field).
  const handler = useRef(null);
  handler.current = (e) => {
    if (!state || saving || e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const n = Number(e.key);
    if (e.key >= "1" && e.key <= "9" && view.concepts[n - 1]) {
      e.preventDefault();
      const c = view.concepts[n - 1].name;
      if (view.kind === "classification") pickClass(c);
      else if (view.kind === "tagging") toggleTag(c);
      else chooseConcept(c);
    } else if (e.key === "0" && view.kind === "tagging") {
      setState({ ...state, concepts: [] });
      setDirty(true);
    } else if (e.key === "Enter") {
      e.preventDefault();
      go(1, view.kind !== "classification"); // a classification is saved by its number key already
    } else if (e.key === "ArrowRight") go(1);
    else if (e.key === "ArrowLeft") go(-1);
    else if ((e.key === "Delete" || e.key === "Backspace") && view.kind === "detection" && selected != null) {
      e.preventDefault();
      setBoxes(state.boxes.filter((_, i) => i !== selected));
      setSelected(null);
    } else if (e.key === "Escape") setSelected(null);
  };
  useEffect(() => {
    const onKey = (e) => handler.current(e);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  if (queue.error) return <ErrorNote error={queue.error} onRetry={queue.reload} />;
  if (!items) return <Spinner label="Loading images…" />;
  if (view.concepts.length === 0)
    return (
      <Empty title="This view has no concepts yet">
        Add the concepts to annotate with:
        <AddConcept project={project} view={view} onAdded={reloadView} />
      </Empty>
    );
  const filter = <WhichImages base={base} query={query} />;
  if (items.length === 0) {
    // A filter that leaves nothing keeps its control on screen, so the person can change it back.
    const filtered = !!(query.status || query.concept);
    return (
      <>
        {filtered && (
          <div class="filters" style={{ marginBottom: "0.75rem" }}>
            {filter}
          </div>
        )}
        <Empty
          title={query.status === "unannotated" ? "Every image is annotated" : filtered ? "No image matches this choice" : "No images to annotate"}
          action={
            <div class="actions" style={{ justifyContent: "center" }}>
              {query.status === "unannotated" && (
                <a class="btn primary" href={`#${base}/train`} data-testid="train-next">
                  Train a model next
                </a>
              )}
              {filtered && (
                <a class="btn" href={`#${base}/annotate`}>
                  Show all images
                </a>
              )}
              <a class="btn" href={`#${base}/images`}>
                {filtered ? "Go to images" : "Upload images"}
              </a>
            </div>
          }
        >
          {query.status === "unannotated" ? "Nothing left to annotate here." : filtered ? "Change the choice above." : "Upload images first."}
        </Empty>
      </>
    );
  }
  if (index >= items.length)
    return (
      <Empty
        title="End of the list"
        action={
          <div class="actions" style={{ justifyContent: "center" }}>
            <a class="btn primary" href={`#${base}/train`} data-testid="train-next">
              Train a model next
            </a>
            <button class="btn" onClick={() => setIndex(0)}>
              Back to the first image
            </button>
          </div>
        }
      >
        {done} image(s) annotated in this session.
      </Empty>
    );

  const inState = (name) => state && state.concepts.includes(name);
  return (
    <div class="annotator">
      <div>
        <div class={`stage ${view.kind === "detection" ? "" : "photo-stage"}`} data-testid="annotate-stage" data-ready={state ? "true" : "false"}>
          {!state ? (
            <Spinner label="Loading image…" />
          ) : view.kind === "detection" ? (
            <BoxEditor
              key={image.id}
              src={imageSrc(project.id, image.id)}
              width={image.width}
              height={image.height}
              boxes={state.boxes}
              concepts={view.concepts}
              drawConcept={drawConcept}
              selected={selected}
              onSelect={setSelected}
              onChange={setBoxes}
            />
          ) : (
            <img class="photo" key={image.id} src={imageSrc(project.id, image.id)} alt={image.original_name} style={{ width: photoWidth(image.width, image.height) }} />
          )}
        </div>
        <ErrorNote error={error} />
        <div class="actions" style={{ marginTop: "0.6rem", justifyContent: "space-between" }}>
          <button class="btn" onClick={() => go(-1)} disabled={index === 0}>
            ← Previous
          </button>
          <span class="muted" data-testid="annotate-position">
            image {index + 1} of {items.length} · <span title={image.original_name}>{image.original_name}</span>
            {!state ? " · loading…" : state.annotated ? " · annotated" : " · not annotated"}
            {saving ? " · saving…" : dirty ? " · unsaved changes" : ""}
          </span>
          <button class="btn" onClick={() => go(1)}>
            Next →
          </button>
        </div>
      </div>
      <aside>
        <div class="card">
          <h3>{view.kind === "detection" ? "Concept of the box" : view.kind === "tagging" ? "Concepts in this image" : "What does it show?"}</h3>
          <div class="concept-list" data-testid="concepts">
            {view.concepts.map((c, i) => {
              const active = view.kind === "detection" ? drawConcept === c.name : inState(c.name);
              return (
                <button
                  class={`btn concept-btn ${active ? "active" : ""}`}
                  key={c.id}
                  disabled={!state || saving}
                  onClick={() => (view.kind === "classification" ? pickClass(c.name) : view.kind === "tagging" ? toggleTag(c.name) : chooseConcept(c.name))}
                >
                  <span>
                    {view.kind === "detection" && <span class="color-dot" style={{ background: conceptColor(view.concepts, c.name) }} />}
                    {c.name}
                  </span>
                  {i < 9 && <kbd class="key">{i + 1}</kbd>}
                </button>
              );
            })}
            {view.kind === "tagging" && (
              <button
                class={`btn concept-btn ${state && state.concepts.length === 0 && state.annotated ? "active" : ""}`}
                onClick={() => {
                  setState({ ...state, concepts: [] });
                  setDirty(true);
                }}
              >
                <span>Without concept</span>
                <kbd class="key">0</kbd>
              </button>
            )}
          </div>
          {view.kind !== "classification" && (
            <button class="btn primary" style={{ marginTop: "0.75rem", width: "100%" }} disabled={!state || saving} onClick={() => go(1, true)}>
              Save and next <kbd>Enter</kbd>
            </button>
          )}
          {view.kind === "detection" && state && (
            <p class="help">
              {state.boxes.length} box(es){selected != null ? ` · box ${selected + 1} selected` : ""}
            </p>
          )}
          <AddConcept project={project} view={view} onAdded={reloadView} />
        </div>
        <div class="filters" style={{ marginTop: "1rem" }}>
          {filter}
          <a href={href(`${base}/images/${image.id}`)}>image details</a>
        </div>
        <Shortcuts kind={view.kind} />
      </aside>
    </div>
  );
}

// Which images to go through; the choice lives in the address, so it shows there and can be shared.
function WhichImages({ base, query }) {
  return (
    <select
      aria-label="which images"
      value={query.status || ""}
      onChange={(e) => navigate(`${base}/annotate`, { ...query, status: e.currentTarget.value, image: undefined })}
    >
      <option value="">All images</option>
      <option value="unannotated">Not annotated</option>
      <option value="annotated">Annotated</option>
    </select>
  );
}

export function AnnotatePage({ projectId, viewId, query }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="annotate" title="Annotate">
      {(project, view, reloadView) => <Annotator project={project} view={view} reloadView={reloadView} query={query} />}
    </ViewFrame>
  );
}
