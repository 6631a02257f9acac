// Evaluation. Classification: confusion matrix heatmap (click any cell, right answers included, to see
// its images), per-class precision, recall and F1, and a gallery of misclassified images with their
// probabilities; each opens large, with a "change label" action on the image's annotation in the view.
// Tagging: per-concept table, PR curves, thresholds, false positives and negatives.
// Detection: mAP, per-concept AP and counts, PR curves, confusion matrix with background, boxes drawn.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { href } from "../router.js";
import { loadAnnotation, saveAnnotation } from "../components/annotation.js";
import { ConfusionMatrix, Probabilities } from "../components/confusion.jsx";
import { isTagging } from "../components/tagging.js";
import { isDetection } from "../components/detection.js";
import { DetectionReport } from "../components/detection-report.jsx";
import { TaggingReport } from "../components/tagging-report.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Empty, ErrorNote, ProjectImage, Spinner, fmt, photoWidth, useAsync } from "../components/ui.jsx";

// The report names images by the path the worker trained from (their content-addressed bytes); the
// version's samples say which project image each is (by its sha256), and its original name.
function withImages(report, samples) {
  const bySha = new Map(samples.map((s) => [s.sha256, s]));
  const attach = (m) => {
    const sha = (m.path.match(/[0-9a-f]{64}/) || [])[0];
    const sample = sha && bySha.get(sha);
    return { ...m, image_id: sample ? sample.image_id : null, image_name: sample ? sample.image_name : m.path.split("/").pop() };
  };
  if (isDetection(report)) return { ...report, images: (report.images || []).map(attach) };
  const predictions = report.predictions ? report.predictions.map(attach) : undefined;
  if (isTagging(report)) {
    // Each mistake also says what the image really shows (its true set, from `predictions`).
    const truth = new Map((predictions || []).map((p) => [p.path, p.true]));
    const errors = Object.fromEntries(
      Object.entries(report.errors || {}).map(([concept, e]) => [
        concept,
        {
          false_positives: (e.false_positives || []).map((m) => ({ ...attach(m), true: truth.get(m.path) })),
          false_negatives: (e.false_negatives || []).map((m) => ({ ...attach(m), true: truth.get(m.path) })),
        },
      ]),
    );
    return { ...report, errors, predictions };
  }
  return {
    ...report,
    misclassified: (report.misclassified || []).map(attach),
    predictions,
  };
}

function ImageCard({ project, item, relabelled, onOpen }) {
  const right = item.true === item.predicted;
  const open = item.image_id != null ? onOpen : null;
  return (
    <div
      class="thumb"
      data-testid="gallery-item"
      role={open ? "button" : undefined}
      tabIndex={open ? 0 : undefined}
      title={open ? "Open this image" : undefined}
      style={open ? { cursor: "pointer" } : undefined}
      onClick={open || undefined}
      onKeyDown={open ? (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), open()) : undefined}
    >
      <div class="frame">
        {item.image_id != null ? (
          <ProjectImage projectId={project.id} imageId={item.image_id} alt={item.image_name} loading="lazy" thumbnail />
        ) : (
          <div class="img-missing">{item.image_name || item.path}</div>
        )}
      </div>
      <div class="caption">
        <div class="file-name" data-testid="gallery-file-name" title={item.image_name} style={{ overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap", color: "var(--muted)" }}>
          {item.image_name}
        </div>
        {relabelled && (
          <div data-testid="relabelled" style={{ color: "var(--ok)" }}>
            label now <b>{relabelled}</b> (for the next version)
          </div>
        )}
        <div>
          true <b class="probs true">{item.true}</b> · predicted <b style={{ color: right ? "var(--ok)" : "var(--bad)" }}>{item.predicted}</b>
        </div>
        {item.probabilities ? (
          <Probabilities probabilities={item.probabilities} truth={item.true} predicted={item.predicted} limit={3} />
        ) : (
          <Probabilities probabilities={{ [item.predicted]: item.probability }} truth={item.true} predicted={item.predicted} limit={1} />
        )}
      </div>
    </div>
  );
}

// One image of the report, large: what the version said about it, and the label it has in the view now,
// which can be changed here (the evaluation keeps the label it was judged on).
function ImageViewer({ project, view, item, onClose, onRelabelled }) {
  const base = viewBase(project.id, view.id);
  const annotation = useAsync(() => loadAnnotation(view.id, item.image_id), [item.image_id]);
  const image = useAsync(() => get(`/projects/${project.id}/images/${item.image_id}`), [item.image_id]);
  const [choice, setChoice] = useState(null);
  const [saved, setSaved] = useState(null);
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    const onKey = (e) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const now = annotation.data ? annotation.data.concepts[0] || null : null;
  const picked = choice ?? now ?? item.true;
  async function change() {
    setSaving(true);
    setError(null);
    try {
      const result = await saveAnnotation(view.id, item.image_id, "classification", { concepts: [picked] });
      setSaved(result.concepts[0]);
      annotation.reload();
      onRelabelled(result.concepts[0]);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  }
  const size = image.data;
  return (
    <div class="modal" data-testid="image-viewer" onClick={(e) => e.target === e.currentTarget && onClose()} role="dialog" aria-modal="true" aria-label={item.image_name}>
      <div class="modal-body">
        <div class="viewer-stage">
          <ProjectImage projectId={project.id} imageId={item.image_id} alt={item.image_name} style={size ? { width: photoWidth(size.width, size.height), display: "block" } : undefined} />
        </div>
        <aside>
          <div class="actions" style={{ justifyContent: "space-between" }}>
            <h3 style={{ margin: 0, flex: 1, wordBreak: "break-all" }} data-testid="viewer-file-name">
              {item.image_name}
            </h3>
            <button class="btn small" onClick={onClose} aria-label="Close">
              ✕
            </button>
          </div>
          <p>
            Trained and judged as <b>{item.true}</b>; predicted <b style={{ color: item.true === item.predicted ? "var(--ok)" : "var(--bad)" }}>{item.predicted}</b>.
          </p>
          {item.probabilities && <Probabilities probabilities={item.probabilities} truth={item.true} predicted={item.predicted} limit={5} />}
          <h3 style={{ marginTop: "1rem" }}>Label in this view</h3>
          {annotation.error && <ErrorNote error={annotation.error} onRetry={annotation.reload} />}
          {!annotation.data ? (
            <Spinner label="Reading its label…" />
          ) : (
            <>
              <p class="help" data-testid="viewer-label-now">
                now: <b>{now || "not annotated"}</b>
              </p>
              <div class="form-row">
                <select aria-label="new label" value={picked} onChange={(e) => setChoice(e.currentTarget.value)} data-testid="viewer-label-choice">
                  {view.concepts.map((c) => (
                    <option value={c.name} key={c.id}>
                      {c.name}
                    </option>
                  ))}
                </select>
                <button class="btn primary" onClick={change} disabled={saving || picked === now} data-testid="change-label">
                  {saving ? "Saving…" : "Change label"}
                </button>
              </div>
            </>
          )}
          {error && <p class="field-error">{error.message}</p>}
          {saved && (
            <div class="notice" data-testid="label-changed" role="status">
              Label changed to <b>{saved}</b> in the view. This evaluation stays as it was (it judged the version on the label it trained
              with); the next version you train uses the new label.
            </div>
          )}
          <p style={{ marginTop: "1rem" }}>
            <a href={`#${base}/images/${item.image_id}`} data-testid="viewer-image-page">
              Open the image's page
            </a>{" "}
            · <a href={href(`${base}/train`)}>train a new version</a>
          </p>
        </aside>
      </div>
    </div>
  );
}

// The images of one cell. A mistake's images come from `misclassified` (every concept's probability,
// most confident first); right answers from `predictions`, least sure first: the borderline ones matter.
function cellImages(report, cell) {
  const inCell = (m) => m.true === cell.true && m.predicted === cell.predicted;
  if (cell.true !== cell.predicted) return (report.misclassified || []).filter(inCell);
  return (report.predictions || []).filter(inCell).sort((a, b) => a.probability - b.probability);
}

function galleryTitle(cell) {
  if (!cell) return "Misclassified images, most confident first";
  const what = `True ${cell.true}, predicted ${cell.predicted}: ${cell.count} image(s)`;
  return cell.true === cell.predicted && cell.count > 1 ? `${what}, least sure first` : what;
}

function PerClass({ report }) {
  return (
    <table class="data" data-testid="per-class-table">
      <thead>
        <tr>
          <th>Concept</th>
          <th class="num">Precision</th>
          <th class="num">Recall</th>
          <th class="num">F1</th>
          <th class="num">Images</th>
        </tr>
      </thead>
      <tbody>
        {report.per_class.map((row) => (
          <tr key={row.class}>
            <td>{row.class}</td>
            <td class="num">{fmt.percent(row.precision)}</td>
            <td class="num">{fmt.percent(row.recall)}</td>
            <td class="num">{fmt.percent(row.f1)}</td>
            <td class="num">{row.support}</td>
          </tr>
        ))}
        {report.macro && (
          <tr>
            <td>
              <b>mean over concepts</b>
            </td>
            <td class="num">{fmt.percent(report.macro.precision)}</td>
            <td class="num">{fmt.percent(report.macro.recall)}</td>
            <td class="num">{fmt.percent(report.macro.f1)}</td>
            <td class="num">{report.num_images}</td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

function Report({ project, view, versionId }) {
  const data = useAsync(async () => {
    const [version, samples] = await Promise.all([get(`/versions/${versionId}`), get(`/versions/${versionId}/samples`)]);
    return { version, report: version.evaluation && withImages(version.evaluation, samples) };
  }, [versionId]);
  const [cell, setCell] = useState(null);
  const [opened, setOpened] = useState(null); // the report's entry shown large
  const [relabelled, setRelabelled] = useState({}); // image id -> label given on this page
  if (data.error) return <ErrorNote error={data.error} onRetry={data.reload} />;
  if (!data.data) return <Spinner label="Loading the evaluation…" />;
  const { version, report } = data.data;
  if (isTagging(report)) return <TaggingReport project={project} version={version} report={report} />;
  if (isDetection(report)) return <DetectionReport project={project} version={version} report={report} />;
  if (!report || !report.confusion_matrix)
    return (
      <Empty title="No evaluation yet">
        {version.status === "succeeded" ? "This version has no evaluation report." : `The report is written when the version finishes training (it is ${version.status}).`}
      </Empty>
    );
  const shown = cell ? cellImages(report, cell) : report.misclassified || [];
  // A report written before `predictions` existed lists the images of mistakes only.
  const rightAnswersUnlisted = cell && cell.true === cell.predicted && cell.count > 0 && !report.predictions;
  return (
    <>
      <div class="stats">
        <div class="stat">
          <b data-testid="accuracy">{fmt.percent(report.accuracy)}</b>
          <span>accuracy</span>
        </div>
        <div class="stat">
          <b>{report.macro ? fmt.percent(report.macro.f1) : "—"}</b>
          <span>mean F1</span>
        </div>
        <div class="stat">
          <b>{report.num_images}</b>
          <span>validation images</span>
        </div>
        <div class="stat">
          <b>{(report.misclassified || []).length}</b>
          <span>mistakes</span>
        </div>
        <div class="stat">
          <b>{version.name}</b>
          <span>version</span>
        </div>
      </div>
      <div class="grid-2">
        <section>
          <h2>Confusion matrix</h2>
          <p class="help">Rows: the true concept; columns: the prediction. Click a cell to see its images.</p>
          <ConfusionMatrix classes={report.classes} matrix={report.confusion_matrix} selected={cell} onSelect={setCell} />
        </section>
        <section>
          <h2>Per concept</h2>
          <PerClass report={report} />
        </section>
      </div>
      <h2 data-testid="gallery-title">
        {galleryTitle(cell)}
        {cell && (
          <button class="btn small" style={{ marginLeft: "0.75rem" }} onClick={() => setCell(null)}>
            Show all mistakes
          </button>
        )}
      </h2>
      {shown.length === 0 ? (
        <Empty title={cell ? (cell.count === 0 ? "No image in this cell" : "These images are not listed") : "No mistakes on the validation images"}>
          {rightAnswersUnlisted ? "This version's report lists the images of mistakes only; train a new version to see right answers too." : null}
        </Empty>
      ) : (
        <div class="gallery" data-testid="gallery">
          {shown.map((m, i) => (
            <ImageCard project={project} item={m} key={i} relabelled={relabelled[m.image_id]} onOpen={() => setOpened(m)} />
          ))}
        </div>
      )}
      {opened && (
        <ImageViewer
          project={project}
          view={view}
          item={opened}
          onClose={() => setOpened(null)}
          onRelabelled={(label) => setRelabelled((r) => ({ ...r, [opened.image_id]: label }))}
        />
      )}
    </>
  );
}

export function EvaluationPage({ projectId, viewId, versionId }) {
  return (
    <ViewFrame
      projectId={projectId}
      viewId={viewId}
      tab="models"
      title="Evaluation"
      actions={<a class="btn" href={`#${viewBase(projectId, viewId)}/versions/${versionId}`}>Training curves</a>}
    >
      {(project, view) => <Report project={project} view={view} versionId={versionId} />}
    </ViewFrame>
  );
}
