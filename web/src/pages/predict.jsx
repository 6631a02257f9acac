// Predict: drop one or many images on a version, see each one's labels and probabilities; for a tagging
// version, every concept on or off (at its own threshold) with its probability; for a detector, its boxes
// drawn on the image with concept and score, and their table. Each result names the version that made
// it; choosing another version predicts the same images again with it (no result is shown under a
// version that did not make it).
import { useEffect, useRef, useState } from "preact/hooks";
import { get, upload } from "../api.js";
import { href, navigate } from "../router.js";
import { BoxedImage } from "../components/box-overlay.jsx";
import { predictionBoxes } from "../components/detection.js";
import { Dropzone } from "../components/dropzone.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { splitOnOff } from "../components/tagging.js";
import { Empty, ErrorNote, Spinner, fmt, photoWidth, useAsync } from "../components/ui.jsx";
import { headline, modelsWithVersions } from "./models.jsx";

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
      <div class="predict-stage">
        {src && (
          <BoxedImage
            src={src}
            alt={file.name}
            width={size && size.width}
            height={size && size.height}
            boxes={boxes}
            highlight={lit}
            onLoad={onLoad}
            data-testid="predicted-image"
            style={size ? { width: photoWidth(size.width, size.height) } : undefined}
          />
        )}
      </div>
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

// Which version made a result, kept with it.
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

// A picked file shown in the page (its object URL made once, released when the result goes away).
function useFileUrl(file) {
  const [src, setSrc] = useState(null);
  useEffect(() => {
    const u = URL.createObjectURL(file);
    setSrc(u);
    return () => URL.revokeObjectURL(u);
  }, [file]);
  return src;
}

const isTagResult = (labels) => labels.length > 0 && labels[0].on !== undefined;
const isBoxResult = (view, labels) => view.kind === "detection" || (labels.length > 0 && !!labels[0].box);

function Result({ view, file, result, made }) {
  const src = useFileUrl(file);
  const [size, setSize] = useState(null);
  // The image's own size (the boxes are in its pixels), read once it is decoded, EXIF turn included.
  const onLoad = (e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight });
  const labels = result.predictions || [];
  if (isBoxResult(view, labels)) return <DetectionResult file={file} src={src} size={size} onLoad={onLoad} result={result} made={made} />;
  const tagging = isTagResult(labels);
  return (
    <div class="split-layout" data-testid="prediction">
      <div class="stage photo-stage">
        {src && <img class="photo" src={src} alt={file.name} onLoad={onLoad} style={size ? { width: photoWidth(size.width, size.height) } : undefined} />}
      </div>
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

// What one image's prediction says in a few words, for a card of the batch.
function shortAnswer(view, result) {
  const labels = result.predictions || [];
  if (isBoxResult(view, labels)) return labels.length ? `${labels.length} object(s): ${[...new Set(labels.map((p) => p.label))].join(", ")}` : "no object found";
  if (isTagResult(labels)) {
    const on = splitOnOff(labels).on;
    return on.length ? on.map((t) => t.label).join(", ") : "no concept on";
  }
  return labels.length ? `${labels[0].label} ${fmt.percent(labels[0].probability)}` : "—";
}

// One image of a batch: the photo, its name and its answer; clicking it shows it in full above.
function ResultCard({ view, item, chosen, onChoose }) {
  const src = useFileUrl(item.file);
  const [size, setSize] = useState(null);
  const labels = (item.result && item.result.predictions) || [];
  const boxes = item.result && isBoxResult(view, labels) ? predictionBoxes(labels) : null;
  return (
    <button
      type="button"
      class={`thumb predict-card ${chosen ? "selected" : ""}`}
      data-testid="batch-result"
      data-file={item.file.name}
      onClick={onChoose}
      aria-pressed={chosen}
      style={{ textAlign: "left", padding: 0, cursor: item.result ? "pointer" : "default", outline: chosen ? "2px solid var(--accent, #2563eb)" : undefined }}
      disabled={!item.result}
    >
      <div class="frame" style={boxes ? { aspectRatio: "auto", minHeight: "120px" } : undefined}>
        {src &&
          (boxes ? (
            <BoxedImage src={src} alt={item.file.name} width={size && size.width} height={size && size.height} boxes={boxes} labels={false} onLoad={(e) => setSize({ width: e.currentTarget.naturalWidth, height: e.currentTarget.naturalHeight })} />
          ) : (
            <img src={src} alt={item.file.name} />
          ))}
      </div>
      <div class="caption" style={{ display: "block" }}>
        <div style={{ overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" }} title={item.file.name}>
          {item.file.name}
        </div>
        {item.result ? (
          <b data-testid="batch-answer">{shortAnswer(view, item.result)}</b>
        ) : (
          <span class="field-error" data-testid="batch-error">
            {item.error}
          </span>
        )}
      </div>
    </button>
  );
}

// The picked images, and what the version made of them.
function Results({ view, run }) {
  const [chosen, setChosen] = useState(0);
  useEffect(() => setChosen(run.items.findIndex((i) => i.result)), [run]);
  const shown = run.items[chosen];
  if (run.items.length === 1 && shown) return <Result view={view} file={shown.file} result={shown.result} made={run.made} />;
  const failed = run.items.filter((i) => i.error).length;
  return (
    <>
      <p data-testid="batch-summary">
        <b>
          {run.items.length - failed} of {run.items.length} image(s)
        </b>{" "}
        predicted by <b>{run.made.label}</b>
        {failed ? `; ${failed} could not be read (named on their cards)` : ""}. Click an image to see it in full.
      </p>
      {shown && shown.result && <Result view={view} file={shown.file} result={shown.result} made={run.made} key={chosen} />}
      <div class="gallery" data-testid="batch-results" style={{ marginTop: "1rem" }}>
        {run.items.map((item, i) => (
          <ResultCard view={view} item={item} key={i} chosen={i === chosen} onChoose={() => setChosen(i)} />
        ))}
      </div>
    </>
  );
}

// The route takes up to 64 images a request, all or nothing: a refused request is asked again image by
// image, so that one unreadable file is named on its own card and the others still get their answer.
const BATCH = 16;
async function predictAll(versionId, files) {
  const send = (chunk) => {
    const form = new FormData();
    chunk.forEach((f) => form.append("files", f, f.name));
    return upload(`/versions/${versionId}/predict`, form);
  };
  const items = [];
  for (let i = 0; i < files.length; i += BATCH) {
    const chunk = files.slice(i, i + BATCH);
    try {
      const results = await send(chunk);
      chunk.forEach((file, j) => items.push({ file, result: results[j] }));
    } catch (err) {
      if (err.status !== 400) throw err;
      if (chunk.length === 1) {
        items.push({ file: chunk[0], error: err.message });
        continue;
      }
      for (const file of chunk) {
        try {
          const [result] = await send([file]);
          items.push({ file, result });
        } catch (one) {
          if (one.status !== 400) throw one;
          items.push({ file, error: one.message });
        }
      }
    }
  }
  return items;
}

// "ants vs bees · v2 · accuracy 96.7%", or the status of a version that cannot predict.
function versionLabel(v) {
  const h = headline(v);
  const name = `${v.model_name} · ${v.name}`;
  if (v.status !== "succeeded") return `${name} · ${v.status.replace(/_/g, " ")}`;
  return h ? `${name} · ${h.label} ${fmt.percent(h.value)}` : name;
}

function Predictor({ project, view, query }) {
  const base = viewBase(project.id, view.id);
  const models = useAsync(() => modelsWithVersions(view.id), [view.id]);
  const [files, setFiles] = useState(null); // the images last picked: predicted again when the version changes
  const [run, setRun] = useState(null); // {versionId, made, items} | {busy, versionId} | {error}
  const generation = useRef(0);
  const list = models.data || null;
  const all = list ? list.flatMap((m) => (m.versions || []).map((v) => ({ ...v, model_name: m.name }))) : [];
  const ready = all.filter((v) => v.status === "succeeded");
  const versionId = query.version ? Number(query.version) : ready.length ? ready[ready.length - 1].id : null;
  const current = all.find((v) => v.id === versionId);

  async function send(picked, id = versionId) {
    if (!picked || !picked.length || id == null) return;
    const mine = ++generation.current; // a slower answer for an earlier choice is dropped
    setRun({ busy: true, versionId: id, count: picked.length });
    try {
      // The version's score threshold (set, or chosen at training and reported in its evaluation).
      const [items, detail] = await Promise.all([predictAll(id, picked), get(`/versions/${id}`).catch(() => null)]);
      const threshold = detail ? (detail.evaluation && detail.evaluation.score_threshold) ?? (detail.settings && detail.settings.score_threshold) : null;
      const version = all.find((v) => v.id === id);
      const made = { id, label: version ? versionLabel(version) : `version ${id}`, threshold };
      if (mine === generation.current) setRun({ versionId: id, made, items });
    } catch (error) {
      if (mine === generation.current) setRun({ error, versionId: id });
    }
  }

  // Another version chosen: the images on screen are predicted again by it.
  useEffect(() => {
    if (files && versionId != null && (!run || run.versionId !== versionId)) send(files, versionId);
  }, [versionId]);

  if (models.error) return <ErrorNote error={models.error} onRetry={models.reload} />;
  if (!list) return <Spinner />;
  if (ready.length === 0)
    return (
      <Empty title="No trained version yet" action={<a class="btn primary" href={`#${base}/train`}>Train a new model version</a>}>
        Predictions need a version that finished training.
      </Empty>
    );

  const pick = (picked) => {
    setFiles(picked);
    send(picked);
  };
  return (
    <>
      <div class="form-row" style={{ marginBottom: "1rem", alignItems: "flex-end" }}>
        <div>
          <label for="predict-version">Version</label>
          <select id="predict-version" value={versionId} onChange={(e) => navigate(`${base}/predict`, { version: e.currentTarget.value })}>
            {all.map((v) => (
              <option value={v.id} key={v.id} disabled={v.status !== "succeeded"}>
                {versionLabel(v)}
              </option>
            ))}
          </select>
        </div>
        {current && current.status === "succeeded" ? (
          <a href={href(`${base}/versions/${versionId}/evaluation`)}>how good is it?</a>
        ) : (
          <span class="field-error">This version cannot predict{current ? ` (it is ${current.status})` : ""}: choose a trained one.</span>
        )}
      </div>
      <Dropzone
        label="Drop images here"
        hint={`or click to choose them: one or many (${files ? "new images replace these" : "JPEG, PNG, WebP…"})`}
        accept="image/*"
        multiple
        onFiles={pick}
        testId="predict-dropzone"
      />
      <div style={{ marginTop: "1rem" }} data-testid="predict-results" data-version={run && !run.busy && !run.error ? run.versionId : ""}>
        {run && run.busy && <Spinner label={`Predicting ${run.count} image(s) with ${current ? versionLabel(current) : `version ${run.versionId}`}…`} />}
        {run && run.error && <ErrorNote error={run.error} />}
        {run && run.items && run.versionId === versionId && <Results view={view} run={run} />}
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
