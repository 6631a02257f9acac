// Evaluation. Classification: confusion matrix heatmap (click any cell, right answers included, to see
// its images), per-class precision, recall and F1, and a gallery of misclassified images with their
// probabilities. Tagging: per-concept table, PR curves, thresholds, false positives and negatives.
// Detection: mAP, per-concept AP and counts, PR curves, confusion matrix with background, boxes drawn.
import { useState } from "preact/hooks";
import { get } from "../api.js";
import { ConfusionMatrix, Probabilities } from "../components/confusion.jsx";
import { isTagging } from "../components/tagging.js";
import { isDetection } from "../components/detection.js";
import { DetectionReport } from "../components/detection-report.jsx";
import { TaggingReport } from "../components/tagging-report.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Empty, ErrorNote, ProjectImage, Spinner, fmt, useAsync } from "../components/ui.jsx";

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

function ImageCard({ project, item }) {
  const right = item.true === item.predicted;
  return (
    <div class="thumb" data-testid="gallery-item">
      <div class="frame">
        {item.image_id != null ? (
          <ProjectImage projectId={project.id} imageId={item.image_id} alt={item.image_name} loading="lazy" thumbnail />
        ) : (
          <div class="img-missing">{item.image_name || item.path}</div>
        )}
      </div>
      <div class="caption">
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
            <ImageCard project={project} item={m} key={i} />
          ))}
        </div>
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
