// The evaluation of a tagging version: mAP and both accuracies, the per-concept table (precision,
// recall, F1, AP, support at the concept's own threshold), its precision-recall curve, and its false
// positives and false negatives as galleries. Click a row to look at another concept.
import { useState } from "preact/hooks";
import { LineChart } from "./chart.jsx";
import { conceptErrors, conceptRows, prCurve } from "./tagging.js";
import { Empty, ProjectImage, fmt } from "./ui.jsx";

function ErrorCard({ project, item, concept, threshold, kind }) {
  return (
    <div class="thumb" data-testid={`${kind}-item`}>
      <div class="frame">
        {item.image_id != null ? (
          <ProjectImage projectId={project.id} imageId={item.image_id} alt={item.image_name} loading="lazy" thumbnail />
        ) : (
          <div class="img-missing">{item.image_name || item.path}</div>
        )}
      </div>
      <div class="caption">
        <div title={item.image_name}>
          {concept} <b style={{ color: "var(--bad)" }}>{fmt.percent(item.probability)}</b>
          <span class="muted"> (threshold {fmt.percent(threshold)})</span>
        </div>
        {item.true && (
          <div class="muted" style={{ fontSize: "0.8rem" }}>
            shows: {item.true.length ? item.true.join(", ") : "no concept"}
          </div>
        )}
      </div>
    </div>
  );
}

function Gallery({ project, title, items, concept, threshold, kind, empty }) {
  return (
    <section style={{ marginTop: "1rem" }}>
      <h3 data-testid={`${kind}-title`}>
        {title} <span class="pill">{items.length}</span>
      </h3>
      {items.length === 0 ? (
        <p class="muted">{empty}</p>
      ) : (
        <div class="gallery" data-testid={`${kind}-gallery`}>
          {items.map((item, i) => (
            <ErrorCard project={project} item={item} concept={concept} threshold={threshold} kind={kind} key={i} />
          ))}
        </div>
      )}
    </section>
  );
}

function ConceptTable({ rows, selected, onSelect, macro, numImages }) {
  return (
    <table class="data" data-testid="per-concept-table">
      <thead>
        <tr>
          <th>Concept</th>
          <th class="num">Precision</th>
          <th class="num">Recall</th>
          <th class="num">F1</th>
          <th class="num">AP</th>
          <th class="num">Images</th>
          <th class="num">Threshold</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr
            key={row.concept}
            class={row.concept === selected ? "selected" : ""}
            style={{ cursor: "pointer", background: row.concept === selected ? "#eff6ff" : undefined }}
            onClick={() => onSelect(row.concept)}
            data-testid="concept-row"
            data-concept={row.concept}
          >
            <td>{row.concept}</td>
            <td class="num">{fmt.percent(row.precision)}</td>
            <td class="num">{fmt.percent(row.recall)}</td>
            <td class="num">{fmt.percent(row.f1)}</td>
            <td class="num">{fmt.percent(row.ap)}</td>
            <td class="num">{row.support}</td>
            <td class="num" data-testid="concept-threshold">{fmt.number(row.threshold, 2)}</td>
          </tr>
        ))}
        {macro && (
          <tr>
            <td>
              <b>mean over concepts</b>
            </td>
            <td class="num">{fmt.percent(macro.precision)}</td>
            <td class="num">{fmt.percent(macro.recall)}</td>
            <td class="num">{fmt.percent(macro.f1)}</td>
            <td class="num" />
            <td class="num">{numImages}</td>
            <td class="num" />
          </tr>
        )}
      </tbody>
    </table>
  );
}

export function TaggingReport({ project, version, report }) {
  const rows = conceptRows(report);
  const [selected, setSelected] = useState(rows.length ? rows[0].concept : null);
  const row = rows.find((r) => r.concept === selected) || rows[0];
  const concept = row ? row.concept : null;
  const { falsePositives, falseNegatives } = concept ? conceptErrors(report, concept) : { falsePositives: [], falseNegatives: [] };
  const curve = concept ? prCurve((report.pr_curves || {})[concept]) : { x: [], y: [] };
  const accuracy = report.accuracy || {};
  return (
    <>
      <div class="stats">
        <div class="stat">
          <b data-testid="map">{fmt.percent(report.map)}</b>
          <span>mAP (mean average precision)</span>
        </div>
        <div class="stat">
          <b data-testid="per-concept-accuracy">{fmt.percent(accuracy.per_concept)}</b>
          <span title="Share of all image × concept decisions that are right at threshold 0.5">accuracy per concept (at 0.5)</span>
        </div>
        <div class="stat">
          <b data-testid="exact-match">{fmt.percent(accuracy.exact_match)}</b>
          <span title="Share of images whose whole set of concepts is right at threshold 0.5">exact match (at 0.5)</span>
        </div>
        <div class="stat">
          <b>{report.num_images}</b>
          <span>validation images</span>
        </div>
        <div class="stat">
          <b>{version.name}</b>
          <span>version</span>
        </div>
      </div>
      <div class="grid-2">
        <section>
          <h2>Per concept</h2>
          <p class="help">
            At each concept's own threshold, chosen at its best F1 on the validation images (predictions use it). Click a row to see
            its curve and its mistakes.
          </p>
          <ConceptTable rows={rows} selected={concept} onSelect={setSelected} macro={report.macro} numImages={report.num_images} />
        </section>
        <section>
          <h2 data-testid="pr-title">Precision-recall: {concept || "—"}</h2>
          <p class="help">
            {row
              ? `Average precision ${fmt.percent(row.ap)}; at its threshold ${fmt.number(row.threshold, 2)}: precision ${fmt.percent(row.precision)}, recall ${fmt.percent(row.recall)}.`
              : ""}
          </p>
          <LineChart
            testId="pr-curve"
            title={`${concept || ""} precision against recall`}
            xLabel="recall"
            wholeX={false}
            xRange={[0, 1]}
            series={[{ label: "precision", ...curve, color: "#2563eb" }]}
            markers={row ? [{ x: row.recall, label: `threshold ${fmt.number(row.threshold, 2)}`, color: "#dc2626" }] : []}
            yRange={[0, 1]}
            emptyText="no curve: no validation image shows this concept"
          />
        </section>
      </div>
      {concept ? (
        <>
          <Gallery
            project={project}
            kind="false-positive"
            title={`False positives: ${concept} predicted, not there`}
            items={falsePositives}
            concept={concept}
            threshold={row.threshold}
            empty={`No image was tagged ${concept} wrongly.`}
          />
          <Gallery
            project={project}
            kind="false-negative"
            title={`False negatives: ${concept} there, missed`}
            items={falseNegatives}
            concept={concept}
            threshold={row.threshold}
            empty={`No image showing ${concept} was missed.`}
          />
        </>
      ) : (
        <Empty title="No concept in this report" />
      )}
    </>
  );
}
