// Predict: drop an image on a version, see its labels (or boxes drawn on it) and probabilities; for a
// tagging version, every concept on or off (at its own threshold) with its probability.
import { useEffect, useState } from "preact/hooks";
import { upload } from "../api.js";
import { href, navigate } from "../router.js";
import { BoxEditor } from "../components/box-editor.jsx";
import { Dropzone } from "../components/dropzone.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { splitOnOff } from "../components/tagging.js";
import { Empty, ErrorNote, Spinner, useAsync } from "../components/ui.jsx";
import { modelsWithVersions } from "./models.jsx";

// One concept of a tagging prediction: on or off, its probability as a bar with its threshold marked.
function TagRow({ tag }) {
  const pct = (v) => `${(v * 100).toFixed(1)}%`;
  return (
    <li data-testid="tag-row" data-on={tag.on ? "on" : "off"} data-concept={tag.label}>
      <span class={tag.on ? "true" : "muted"} title={tag.label}>
        <b style={{ display: "inline-block", minWidth: "2.2em", color: tag.on ? "var(--ok)" : "#94a3b8" }}>{tag.on ? "on" : "off"}</b>
        {tag.label}
      </span>
      <span class="bar" style={{ position: "relative" }} title={`threshold ${pct(tag.threshold)}`}>
        <div style={{ width: pct(tag.probability), background: tag.on ? undefined : "#cbd5e1" }} />
        <i style={{ position: "absolute", left: pct(tag.threshold), top: "-3px", bottom: "-3px", borderLeft: "2px solid #dc2626" }} />
      </span>
      <span class="num">{pct(tag.probability)}</span>
    </li>
  );
}

function TagList({ predictions }) {
  const { on, off } = splitOnOff(predictions);
  return (
    <>
      <p class="help" data-testid="tags-on-summary">
        {on.length ? `${on.length} concept(s) on: ${on.map((t) => t.label).join(", ")}` : "No concept is on"} · the red mark is each
        concept's threshold
      </p>
      <ul class="probs" data-testid="prediction-labels" style={{ fontSize: "0.95rem" }}>
        {[...on, ...off].map((t) => (
          <TagRow tag={t} key={t.label} />
        ))}
      </ul>
    </>
  );
}

function Result({ view, file, result }) {
  const [src, setSrc] = useState(null);
  const [size, setSize] = useState(null);
  useEffect(() => {
    const u = URL.createObjectURL(file);
    setSrc(u);
    const img = new Image();
    img.onload = () => setSize({ width: img.naturalWidth, height: img.naturalHeight });
    img.src = u;
    return () => URL.revokeObjectURL(u);
  }, [file]);
  const labels = result.predictions || [];
  const boxes = result.boxes || null;
  const tagging = labels.length > 0 && labels[0].on !== undefined;
  return (
    <div class="split-layout" data-testid="prediction">
      <div class="stage">
        {src && boxes && size ? (
          <BoxEditor
            src={src}
            width={size.width}
            height={size.height}
            boxes={boxes.map((b) => ({ ...b, concept: b.concept ?? b.label }))}
            concepts={view.concepts}
            scores={boxes.map((b) => b.probability ?? b.score)}
            selected={null}
            onSelect={() => {}}
            onChange={() => {}}
            readOnly
          />
        ) : (
          src && <img src={src} alt={file.name} />
        )}
      </div>
      <aside class="card">
        <h3>{boxes ? `${boxes.length} object(s) found` : tagging ? "Concepts" : "Labels"}</h3>
        <p class="help" style={{ marginTop: 0 }}>
          {file.name}
        </p>
        {tagging ? (
          <TagList predictions={labels} />
        ) : (
        <ul class="probs" data-testid="prediction-labels" style={{ fontSize: "0.95rem" }}>
          {labels.map((l, i) => (
            <li key={l.label}>
              <span class={i === 0 ? "true" : ""}>{l.label}</span>
              <span class="bar">
                <div style={{ width: `${(l.probability * 100).toFixed(1)}%` }} />
              </span>
              <span class="num">{(l.probability * 100).toFixed(1)}%</span>
            </li>
          ))}
        </ul>
        )}
      </aside>
    </div>
  );
}

function Predictor({ project, view, query }) {
  const base = viewBase(project.id, view.id);
  const models = useAsync(() => modelsWithVersions(view.id), [view.id]);
  const [state, setState] = useState(null); // {file, result?, error?, busy}
  const list = models.data || null;
  if (models.error) return <ErrorNote error={models.error} onRetry={models.reload} />;
  if (!list) return <Spinner />;
  const ready = list.flatMap((m) => (m.versions || []).filter((v) => v.status === "succeeded").map((v) => ({ ...v, model_name: m.name })));
  if (ready.length === 0)
    return (
      <Empty title="No trained version yet" action={<a class="btn primary" href={`#${base}/train`}>Train a new model version</a>}>
        Predictions need a version that finished training.
      </Empty>
    );
  const versionId = query.version ? Number(query.version) : ready[ready.length - 1].id;

  async function send(files) {
    const file = files[0];
    if (!file) return;
    setState({ file, busy: true });
    const form = new FormData();
    form.append("files", file, file.name);
    try {
      const [result] = await upload(`/versions/${versionId}/predict`, form);
      setState({ file, result });
    } catch (error) {
      setState({ file, error });
    }
  }

  return (
    <>
      <div class="form-row" style={{ marginBottom: "1rem" }}>
        <div>
          <label for="predict-version">Version</label>
          <select id="predict-version" value={versionId} onChange={(e) => navigate(`${base}/predict`, { version: e.currentTarget.value })}>
            {ready.map((v) => (
              <option value={v.id} key={v.id}>
                {v.model_name} · {v.name}
              </option>
            ))}
          </select>
        </div>
        <a href={href(`${base}/versions/${versionId}/evaluation`)}>how good is it?</a>
      </div>
      <Dropzone
        label="Drop an image here"
        hint="or click to choose one"
        accept="image/*"
        multiple={false}
        onFiles={send}
        testId="predict-dropzone"
      />
      <div style={{ marginTop: "1rem" }}>
        {state && state.busy && <Spinner label="Predicting…" />}
        {state && state.error && <ErrorNote error={state.error} />}
        {state && state.result && <Result view={view} file={state.file} result={state.result} />}
      </div>
    </>
  );
}

export function PredictPage({ projectId, viewId, query }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="predict" title="Predict">
      {(project, view) => <Predictor project={project} view={view} query={query} />}
    </ViewFrame>
  );
}
