// Predict: drop an image on a version, see its labels and probabilities; for a tagging version, every
// concept on or off (at its own threshold) with its probability; for a detector, its boxes drawn on the
// image with concept and score, and their table. Each result names the version that made it.
import { useEffect, useState } from "preact/hooks";
import { get, upload } from "../api.js";
import { href, navigate } from "../router.js";
import { BoxedImage } from "../components/box-overlay.jsx";
import { predictionBoxes } from "../components/detection.js";
import { Dropzone } from "../components/dropzone.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { splitOnOff } from "../components/tagging.js";
import { Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";
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

// A detector's result: the uploaded image with each box drawn (concept and score), and the table.
function DetectionResult({ file, src, size, onLoad, result, made }) {
  const [lit, setLit] = useState(null);
  const found = result.predictions || [];
  const boxes = predictionBoxes(found);
  const whole = (v) => Math.round(v);
  return (
    <div data-testid="prediction">
      <ResultHead file={file} made={made}>
        {found.length
          ? `${found.length} object(s) found, scoring at least ${made.threshold != null ? fmt.number(made.threshold, 2) : "the version's threshold"}`
          : `No object found scoring at least ${made.threshold != null ? fmt.number(made.threshold, 2) : "the version's threshold"}`}
      </ResultHead>
      <div class="predict-stage">{src && <BoxedImage src={src} alt={file.name} width={size && size.width} height={size && size.height} boxes={boxes} highlight={lit} onLoad={onLoad} data-testid="predicted-image" />}</div>
      {found.length > 0 && (
        <table class="data" data-testid="prediction-boxes" style={{ marginTop: "0.75rem" }}>
          <thead>
            <tr>
              <th class="num">#</th>
              <th>Concept</th>
              <th class="num">Score</th>
              <th class="num">Left</th>
              <th class="num">Top</th>
              <th class="num">Right</th>
              <th class="num">Bottom</th>
              <th class="num">Size (px)</th>
            </tr>
          </thead>
          <tbody>
            {found.map((p, i) => (
              <tr key={i} data-testid="prediction-box-row" onMouseEnter={() => setLit(i)} onMouseLeave={() => setLit(null)} class={lit === i ? "selected" : ""}>
                <td class="num">{i + 1}</td>
                <td>{p.label}</td>
                <td class="num">{fmt.percent(p.score)}</td>
                <td class="num">{whole(p.box.x_min)}</td>
                <td class="num">{whole(p.box.y_min)}</td>
                <td class="num">{whole(p.box.x_max)}</td>
                <td class="num">{whole(p.box.y_max)}</td>
                <td class="num">
                  {whole(p.box.x_max - p.box.x_min)} × {whole(p.box.y_max - p.box.y_min)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p class="help">Box corners are in the image's pixels, from its top-left corner. Hover a row to find its box.</p>
    </div>
  );
}

// Which version made a result, kept with it: choosing another version does not relabel it.
function ResultHead({ file, made, children }) {
  return (
    <div class="result-head" data-testid="prediction-made-by">
      <h3 style={{ margin: 0 }}>{children}</h3>
      <p class="help" style={{ marginTop: "0.2rem" }}>
        {file.name} · predicted by <b>{made.label}</b>
      </p>
    </div>
  );
}

function Result({ view, file, result, made }) {
  const [src, setSrc] = useState(null);
  const [size, setSize] = useState(null);
  useEffect(() => {
    const u = URL.createObjectURL(file);
    setSrc(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);
  // The image's own size (the boxes are in its pixels), read once it is decoded, EXIF turn included.
  const onLoad = (e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight });
  const labels = result.predictions || [];
  if (view.kind === "detection" || (labels.length > 0 && labels[0].box)) return <DetectionResult file={file} src={src} size={size} onLoad={onLoad} result={result} made={made} />;
  const tagging = labels.length > 0 && labels[0].on !== undefined;
  return (
    <div class="split-layout" data-testid="prediction">
      <div class="stage">{src && <img src={src} alt={file.name} />}</div>
      <aside class="card">
        <ResultHead file={file} made={made}>
          {tagging ? "Concepts" : "Labels"}
        </ResultHead>
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

  const current = ready.find((v) => v.id === versionId);

  async function send(files) {
    const file = files[0];
    if (!file) return;
    setState({ file, busy: true });
    const form = new FormData();
    form.append("files", file, file.name);
    try {
      // The version's score threshold (set, or chosen at training and reported in its evaluation).
      const [[result], detail] = await Promise.all([upload(`/versions/${versionId}/predict`, form), get(`/versions/${versionId}`).catch(() => null)]);
      const threshold = detail ? (detail.evaluation && detail.evaluation.score_threshold) ?? (detail.settings && detail.settings.score_threshold) : null;
      const made = { id: versionId, label: current ? `${current.model_name} · ${current.name}` : `version ${versionId}`, threshold };
      setState({ file, result, made });
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
        {state && state.result && <Result view={view} file={state.file} result={state.result} made={state.made} />}
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
