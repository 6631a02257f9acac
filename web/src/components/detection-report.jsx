// The evaluation of a detection version: mAP@0.5, mAP@[.5:.95], precision and recall at the score
// threshold; the per-concept table; precision-recall curves; the confusion matrix with background; a
// gallery of validation images with their true and predicted boxes drawn (click one to see it large);
// the report's three pictures to download.
import { useEffect, useState } from "preact/hooks";
import { imageSrc, thumbnailSrc } from "../api.js";
import { BoxedImage, useImageSize } from "./box-overlay.jsx";
import { LineChart, PALETTE } from "./chart.jsx";
import { ConfusionMatrix } from "./confusion.jsx";
import { BOX_KINDS, cellTitle, errorCount, galleryImages, imageBoxes, totals, verdict } from "./detection.js";
import { prCurve } from "./tagging.js";
import { Empty, fmt } from "./ui.jsx";

const PAGE = 24;
const MAX_CURVES = PALETTE.length;
const PICTURES = [
  ["pr_curves", "Precision-recall curves"],
  ["confusion_matrix", "Confusion matrix"],
  ["detections", "Validation images with their boxes"],
];

function Legend() {
  return (
    <div class="box-legend" data-testid="box-legend">
      {["found", "missed", "right", "false_positive"].map((k) => (
        <span key={k}>
          <svg width="26" height="14" aria-hidden="true">
            <rect x="2" y="2" width="22" height="10" fill="none" stroke="#000" stroke-opacity="0.6" stroke-width="4" />
            <rect x="2" y="2" width="22" height="10" fill="none" stroke={BOX_KINDS[k].colour} stroke-width="2" stroke-dasharray={BOX_KINDS[k].dashed ? "5 3" : undefined} />
          </svg>
          {BOX_KINDS[k].label}
        </span>
      ))}
    </div>
  );
}

function DetectionCard({ project, image, show, onOpen }) {
  const size = useImageSize(project.id, image.image_id);
  const errors = errorCount(image);
  return (
    <button type="button" class={`thumb det-card ${errors ? "has-errors" : ""}`} data-testid="detection-item" data-errors={errors} onClick={onOpen} title="See it large">
      <div class="det-frame">
        {image.image_id != null ? (
          <BoxedImage src={thumbnailSrc(project.id, image.image_id)} alt={image.image_name} width={size && size.width} height={size && size.height} boxes={imageBoxes(image, show)} labels={false} />
        ) : (
          <div class="img-missing">{image.image_name} (deleted from the project)</div>
        )}
      </div>
      <div class="caption">
        <div class="name" title={image.image_name}>
          {image.image_name}
        </div>
        <div style={{ color: errors ? "var(--bad)" : "var(--ok)" }}>{verdict(image)}</div>
      </div>
    </button>
  );
}

// One image large, every box labelled, and the list of its boxes.
function Viewer({ project, image, show, onClose, onStep }) {
  const size = useImageSize(project.id, image.image_id);
  const [lit, setLit] = useState(null);
  const boxes = imageBoxes(image, show);
  useEffect(() => {
    const key = (e) => {
      if (e.key === "Escape") onClose();
      if (e.key === "ArrowRight") onStep(1);
      if (e.key === "ArrowLeft") onStep(-1);
    };
    window.addEventListener("keydown", key);
    return () => window.removeEventListener("keydown", key);
  }, [onClose, onStep]);
  return (
    <div class="modal" role="dialog" aria-modal="true" aria-label={image.image_name} onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal-body" data-testid="detection-viewer">
        <div class="viewer-stage">
          {image.image_id != null && (
            <BoxedImage src={imageSrc(project.id, image.image_id)} alt={image.image_name} width={size && size.width} height={size && size.height} boxes={boxes} highlight={lit} />
          )}
        </div>
        <aside>
          <div class="actions" style={{ justifyContent: "space-between" }}>
            <b title={image.image_name} style={{ overflow: "hidden", textOverflow: "ellipsis" }}>
              {image.image_name}
            </b>
            <button type="button" class="btn small" onClick={onClose} data-testid="viewer-close">
              Close
            </button>
          </div>
          <p class="help">{verdict(image)}</p>
          <ul class="box-list">
            {boxes.map((b, i) => (
              <li key={i} onMouseEnter={() => setLit(i)} onMouseLeave={() => setLit(null)} class={lit === i ? "lit" : ""}>
                <span class="swatch" style={{ borderColor: BOX_KINDS[b.kind].colour, borderStyle: BOX_KINDS[b.kind].dashed ? "dashed" : "solid" }} />
                <span>
                  <b>{b.concept}</b>
                  {b.score != null ? ` ${fmt.percent(b.score, 0)}` : ""}
                  <br />
                  <span class="muted">{BOX_KINDS[b.kind].label}</span>
                </span>
              </li>
            ))}
            {boxes.length === 0 && <li class="muted">No box: nothing here, and nothing predicted.</li>}
          </ul>
          <div class="actions">
            <button type="button" class="btn small" onClick={() => onStep(-1)}>
              ← Previous
            </button>
            <button type="button" class="btn small" onClick={() => onStep(1)}>
              Next →
            </button>
          </div>
          <p class="help">Arrow keys step through the images; Escape closes.</p>
        </aside>
      </div>
    </div>
  );
}

function Gallery({ project, report, cell, setCell }) {
  const [onlyErrors, setOnlyErrors] = useState(false);
  const [concept, setConcept] = useState("");
  const [show, setShow] = useState({ truth: true, predicted: true });
  const [limit, setLimit] = useState(PAGE);
  const [open, setOpen] = useState(null); // index into `images`
  const images = galleryImages(report, { onlyErrors, concept: concept || null, cell });
  const withErrors = (report.images || []).filter((i) => errorCount(i) > 0).length;
  useEffect(() => setLimit(PAGE), [onlyErrors, concept, cell]);
  const step = (d) => setOpen((i) => (i == null ? i : (i + d + images.length) % images.length));
  return (
    <section>
      <h2 data-testid="gallery-title">
        {cell ? cellTitle(cell) : "Validation images: true and predicted boxes"}
        {cell && (
          <button class="btn small" style={{ marginLeft: "0.75rem" }} onClick={() => setCell(null)}>
            Show every image
          </button>
        )}
      </h2>
      <p class="help">
        Each image's true boxes and the boxes the detector predicted at score ≥ {fmt.number(report.score_threshold, 2)}. Images with the most mistakes come
        first; click one to see it large. {withErrors} of {(report.images || []).length} image(s) have a mistake.
      </p>
      <Legend />
      <div class="filters" data-testid="gallery-filters">
        <label class="switch">
          <input type="checkbox" checked={onlyErrors} onChange={(e) => setOnlyErrors(e.currentTarget.checked)} data-testid="only-errors" />
          only images with errors
        </label>
        <select aria-label="concept" value={concept} onChange={(e) => setConcept(e.currentTarget.value)}>
          <option value="">Every concept</option>
          {report.classes.map((c) => (
            <option value={c} key={c}>
              {c}
            </option>
          ))}
        </select>
        <label class="switch">
          <input type="checkbox" checked={show.truth} onChange={(e) => setShow({ ...show, truth: e.currentTarget.checked })} data-testid="show-true" />
          true boxes
        </label>
        <label class="switch">
          <input type="checkbox" checked={show.predicted} onChange={(e) => setShow({ ...show, predicted: e.currentTarget.checked })} data-testid="show-predicted" />
          predicted boxes
        </label>
        <span class="muted" data-testid="gallery-count">
          {images.length} image(s)
        </span>
      </div>
      {images.length === 0 ? (
        <Empty title={onlyErrors && !cell && !concept ? "No mistakes on the validation images" : "No image matches"}>
          {onlyErrors || concept || cell ? "Change the filters above." : "This report lists no validation image."}
        </Empty>
      ) : (
        <>
          <div class="gallery det-gallery" data-testid="detection-gallery">
            {images.slice(0, limit).map((image, i) => (
              <DetectionCard project={project} image={image} show={show} key={image.path} onOpen={() => setOpen(i)} />
            ))}
          </div>
          {images.length > limit && (
            <p style={{ textAlign: "center" }}>
              <button class="btn" onClick={() => setLimit(limit + PAGE)}>
                Show {Math.min(PAGE, images.length - limit)} more of {images.length - limit}
              </button>
            </p>
          )}
        </>
      )}
      {open != null && images[open] && <Viewer project={project} image={images[open]} show={show} onClose={() => setOpen(null)} onStep={step} />}
    </section>
  );
}

function ClassTable({ report }) {
  const m = report.macro;
  return (
    <div style={{ overflowX: "auto" }}>
      <table class="data" data-testid="per-class-table">
        <thead>
          <tr>
            <th>Concept</th>
            <th class="num" title="Average precision, a box counting when it overlaps a true box by at least half">AP@0.5</th>
            <th class="num" title="Average precision over overlaps 0.5 to 0.95 (COCO's AP)">AP@[.5:.95]</th>
            <th class="num">Precision</th>
            <th class="num">Recall</th>
            <th class="num">F1</th>
            <th class="num" title="True boxes of the concept on the validation images">Boxes</th>
            <th class="num" title="True positives: true boxes found">TP</th>
            <th class="num" title="False positives: predicted boxes with no object of their concept under them">FP</th>
            <th class="num" title="False negatives: true boxes missed">FN</th>
          </tr>
        </thead>
        <tbody>
          {report.per_class.map((row) => (
            <tr key={row.concept} data-testid="class-row" data-concept={row.concept}>
              <td>{row.concept}</td>
              <td class="num">{fmt.percent(row.ap50)}</td>
              <td class="num">{fmt.percent(row.ap)}</td>
              <td class="num">{fmt.percent(row.precision)}</td>
              <td class="num">{fmt.percent(row.recall)}</td>
              <td class="num">{fmt.percent(row.f1)}</td>
              <td class="num">{row.support}</td>
              <td class="num">{row.true_positives}</td>
              <td class="num">{row.false_positives}</td>
              <td class="num">{row.false_negatives}</td>
            </tr>
          ))}
          {m && report.per_class.length > 1 && (
            <tr>
              <td>
                <b>mean over concepts</b>
              </td>
              <td class="num">{fmt.percent(m.ap50)}</td>
              <td class="num">{fmt.percent(m.ap)}</td>
              <td class="num">{fmt.percent(m.precision)}</td>
              <td class="num">{fmt.percent(m.recall)}</td>
              <td class="num">{fmt.percent(m.f1)}</td>
              <td class="num">{report.num_boxes}</td>
              <td class="num" />
              <td class="num" />
              <td class="num" />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

function Curves({ report }) {
  // The concepts with the most boxes, as many as there are colours.
  const concepts = [...report.per_class].sort((a, b) => b.support - a.support).slice(0, MAX_CURVES);
  const series = concepts.map((row, i) => ({ label: row.concept, ...prCurve((report.pr_curves || {})[row.concept]), color: PALETTE[i % PALETTE.length] }));
  return (
    <>
      <LineChart
        testId="pr-curves"
        title="Precision against recall, per concept"
        note="Each concept's boxes ranked by score: how precise the detector stays as it finds more of them (a box counts when it overlaps a true box by at least half). The area under a curve is its AP@0.5."
        xLabel="recall"
        wholeX={false}
        xRange={[0, 1]}
        yRange={[0, 1]}
        series={series}
        emptyText="no curve: the validation images have no true box"
      />
      {report.per_class.length > MAX_CURVES && <p class="help">The {MAX_CURVES} concepts with the most boxes are drawn.</p>}
    </>
  );
}

function Pictures({ version }) {
  const present = new Map((version.artifacts || []).map((a) => [a.kind, a]));
  const shown = PICTURES.filter(([kind]) => present.has(kind));
  if (!shown.length) return null;
  return (
    <p class="actions" data-testid="artifact-links">
      <span class="muted">Download the report's pictures:</span>
      {shown.map(([kind, title]) => (
        <a class="btn small" key={kind} href={present.get(kind).url} download={`${version.name}-${kind}.png`} data-testid={`artifact-${kind}`}>
          {title} (PNG, {Math.max(1, Math.round(present.get(kind).size_bytes / 1024))} KB)
        </a>
      ))}
    </p>
  );
}

export function DetectionReport({ project, version, report }) {
  const [cell, setCell] = useState(null);
  const all = totals(report);
  const chosen = version.settings && version.settings.score_threshold == null;
  return (
    <>
      <div class="stats" data-testid="detection-stats">
        <div class="stat" title="Mean over concepts of the average precision, a predicted box counting when it overlaps a true box by at least half (IoU ≥ 0.5)">
          <b data-testid="map50">{fmt.percent(report.map50)}</b>
          <span>mAP@0.5</span>
        </div>
        <div class="stat" title="COCO's mAP: the same averaged over overlaps 0.5, 0.55, ... 0.95 (boxes must also be tight)">
          <b data-testid="map">{fmt.percent(report.map)}</b>
          <span>mAP@[.5:.95]</span>
        </div>
        <div class="stat" title="Of the boxes predicted at the score threshold, the share on an object of their concept">
          <b data-testid="precision">{fmt.percent(all.precision)}</b>
          <span>precision ({all.tp} of {all.tp + all.fp} boxes right)</span>
        </div>
        <div class="stat" title="Of the true boxes, the share found at the score threshold">
          <b data-testid="recall">{fmt.percent(all.recall)}</b>
          <span>recall ({all.tp} of {all.tp + all.fn} objects found)</span>
        </div>
        <div class="stat">
          <b>{report.num_images}</b>
          <span>validation images ({report.num_boxes} boxes)</span>
        </div>
        <div class="stat">
          <b>{version.name}</b>
          <span>version</span>
        </div>
      </div>
      <p class="help" data-testid="threshold-note">
        Precision, recall, the table's counts, the matrix and the gallery count the boxes scoring at least <b>{fmt.number(report.score_threshold, 2)}</b>
        {chosen ? " (chosen where F1 is best on these validation images; predictions use it too)" : " (the version's score_threshold setting)"}; a predicted box is right
        when it overlaps a true box of its concept by at least {fmt.percent(report.iou_threshold, 0)} (IoU). mAP counts every box, at every score.
      </p>
      <Pictures version={version} />
      <h2>Per concept</h2>
      <ClassTable report={report} />
      <div class="grid-2">
        <section>
          <h2>Precision-recall</h2>
          <Curves report={report} />
        </section>
        <section>
          <h2>Confusion matrix</h2>
          <p class="help" data-testid="background-explained">
            Rows: the true concept of each box; columns: what the detector predicted there. The <b>background</b> row counts predicted boxes where there is no object
            (false positives); the <b>background</b> column counts objects the detector did not find (false negatives). Click a cell to see its images.
          </p>
          <ConfusionMatrix classes={report.confusion_matrix.labels} matrix={report.confusion_matrix.matrix} selected={cell} onSelect={setCell} unit="box(es)" blank="background" />
        </section>
      </div>
      <Gallery project={project} report={report} cell={cell} setCell={setCell} />
    </>
  );
}
