// Compare versions: metrics, curves overlaid (the metric's axis fitted to the values), what each run
// computed and what it reused from the feature cache, and the settings that differ (all on request).
import { useState } from "preact/hooks";
import { get } from "../api.js";
import { href, navigate } from "../router.js";
import { LineChart, PALETTE } from "../components/chart.jsx";
import { curves, differingSettings, featureReuse, metricLabel } from "../components/curves.js";
import { fetchAllEvents } from "../components/metrics.js";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Badge, Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";
import { headline, modelsWithVersions, trainingSeconds } from "./models.jsx";

const show = (v) => (v === null || v === undefined ? "—" : typeof v === "boolean" ? (v ? "on" : "off") : Array.isArray(v) ? v.join(", ") : String(v));

function Picker({ base, models, chosen }) {
  const toggle = (id) => {
    const next = chosen.includes(id) ? chosen.filter((x) => x !== id) : [...chosen, id];
    navigate(`${base}/compare`, { versions: next.join(",") });
  };
  return (
    <div class="card" data-testid="version-picker">
      <h3>Versions to compare</h3>
      {models.map((m) => (
        <div key={m.id} style={{ marginBottom: "0.4rem" }}>
          <span class="muted">{m.name}: </span>
          {(m.versions || []).map((v) => (
            <label class="switch" key={v.id} style={{ marginRight: "1rem" }}>
              <input type="checkbox" checked={chosen.includes(v.id)} onChange={() => toggle(v.id)} data-testid={`pick-version-${v.id}`} />
              {v.name} <Badge status={v.status} />
            </label>
          ))}
        </div>
      ))}
    </div>
  );
}

// "features 7.2 s, head 0.3 s": where a run's time went (the summary's timings, total left out).
const timingParts = (timings) =>
  Object.entries(timings)
    .filter(([k, v]) => k !== "total" && v >= 0.05)
    .map(([k, v]) => `${k.replace(/_/g, "-")} ${v < 10 ? v.toFixed(1) : Math.round(v)} s`)
    .join(", ");

function Comparison({ versions, runs, task, hidden = [] }) {
  const [showAll, setShowAll] = useState(false);
  // The settings that do nothing for this view's task are left out (a detector has no head, ...).
  const every = [...new Set(versions.flatMap((v) => Object.keys(v.settings || {})))];
  const names = every.filter((n) => !hidden.includes(n));
  const leftOut = every.length - names.length;
  const label = (v) => `${v.model_name ? `${v.model_name} ` : ""}${v.name}`;
  const differing = differingSettings(versions, names);
  const differs = (n) => differing.includes(n);
  const diffCount = differing.length;
  const listed = showAll ? names : differing;
  const overlay = (pick) => runs.map((c, i) => ({ label: label(versions[i]), ...pick(c), color: PALETTE[i % PALETTE.length] }));
  const key = runs[0] ? runs[0].headline : "val_accuracy";
  // Every best metric any of them reports (classification: accuracy; tagging: mAP, both accuracies;
  // detection: mAP@0.5, mAP@[.5:.95], mAP@0.75).
  const metricKeys = ["val_map50", "val_map", "val_map75", "val_accuracy", "val_exact_match"].filter((k) =>
    versions.some((v) => v.best_metrics && v.best_metrics[k] != null),
  );
  const digests = new Set(versions.map((v) => (v.data_split ? v.data_split.validation_digest : null)));
  const sameValidation = digests.size === 1 && !digests.has(null);
  return (
    <>
      <h2>Metrics</h2>
      {!sameValidation && (
        <div class="notice warn" data-testid="different-validation">
          {digests.has(null)
            ? "Some of these versions do not record their validation images: their metrics may come from different images."
            : "These versions were judged on different validation images (the view was re-split, or validation images were fixed in between): compare their metrics with care."}
        </div>
      )}
      <table class="data" data-testid="compare-metrics">
        <thead>
          <tr>
            <th />
            {versions.map((v) => (
              <th key={v.id}>{label(v)}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>status</td>
            {versions.map((v) => (
              <td key={v.id}>
                <Badge status={v.status} />
              </td>
            ))}
          </tr>
          <tr>
            <td>headline metric</td>
            {versions.map((v) => {
              const h = headline(v);
              return <td key={v.id}>{h ? `${fmt.percent(h.value)} ${h.label}` : "—"}</td>;
            })}
          </tr>
          {metricKeys.map((k) => (
            <tr key={k} data-testid={`compare-${k}`}>
              <td>best {metricLabel(k, task)}</td>
              {versions.map((v) => (
                <td key={v.id}>{fmt.percent(v.best_metrics && v.best_metrics[k])}</td>
              ))}
            </tr>
          ))}
          <tr>
            <td>validation images</td>
            {versions.map((v) => (
              <td key={v.id} data-testid="compare-validation">
                {v.data_split ? `${v.data_split.validation_images}${sameValidation ? " (the same images)" : ` (split ${v.data_split.source === "fixed" ? "fixed by hand" : `#${v.data_split.generation}`})`}` : "—"}
              </td>
            ))}
          </tr>
          <tr>
            <td>best validation loss</td>
            {versions.map((v) => (
              <td key={v.id}>{fmt.number(v.best_metrics && v.best_metrics.val_loss, 4)}</td>
            ))}
          </tr>
          <tr>
            <td>best epoch</td>
            {versions.map((v) => (
              <td key={v.id}>{v.best_epoch != null ? `${v.best_epoch}${v.best_stage ? ` (${v.best_stage.replace("_", " ")})` : ""}` : "—"}</td>
            ))}
          </tr>
          <tr>
            <td>training time</td>
            {versions.map((v) => (
              <td key={v.id} data-testid="compare-time">
                {fmt.duration(trainingSeconds(v))}
                {v.timings ? <div class="muted" style={{ fontSize: "0.85rem" }}>{timingParts(v.timings)}</div> : null}
              </td>
            ))}
          </tr>
          <tr>
            <td>
              backbone features
              <div class="muted" style={{ fontSize: "0.85rem" }}>reused from the feature cache, of all the run needed</div>
            </td>
            {versions.map((v) => {
              const reuse = featureReuse(v.summary);
              return (
                <td key={v.id} data-testid="compare-features">
                  {reuse ? reuse.text : v.summary && v.summary.task === "detection" ? "computed for this run (detection keeps no cache)" : "—"}
                </td>
              );
            })}
          </tr>
        </tbody>
      </table>
      <h2>Curves</h2>
      <div class="charts" data-testid="compare-charts">
        <LineChart
          testId="compare-metric-chart"
          title={metricLabel(key, task).replace(/^./, (s) => s.toUpperCase())}
          series={overlay((c) => c.metric)}
          yFit={[0, 1]}
          percent
        />
        <LineChart title="Validation loss" series={overlay((c) => c.valLoss)} />
        <LineChart title="Batch loss" xLabel="step" series={overlay((c) => c.batchLoss)} />
        <LineChart title="Learning rate" xLabel={runs[0] ? runs[0].lrAxis : "step"} series={overlay((c) => c.learningRate)} />
      </div>
      <h2 class="actions">
        Settings <span class="pill">{diffCount} differ</span>
        <label class="switch" style={{ fontSize: "0.9rem" }}>
          <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.currentTarget.checked)} data-testid="show-all-settings" />
          show all {names.length} settings
        </label>
      </h2>
      {leftOut > 0 && (
        <p class="help" data-testid="settings-left-out">
          {leftOut} setting(s) that do not apply to {task} are left out: {every.filter((n) => hidden.includes(n)).map((n) => n.replace(/_/g, " ")).join(", ")}.
        </p>
      )}
      <table class="data" data-testid="compare-settings">
        <thead>
          <tr>
            <th>Setting</th>
            {versions.map((v) => (
              <th key={v.id}>{label(v)}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {listed.length === 0 && (
            <tr>
              <td colSpan={versions.length + 1} class="muted" data-testid="settings-same">
                Every setting is the same: the versions differ only in their data or their random start.
              </td>
            </tr>
          )}
          {listed.map((n) => (
            <tr key={n} class={differs(n) ? "diff" : ""} data-testid={differs(n) ? "setting-diff" : undefined}>
              <td>{n.replace(/_/g, " ")}</td>
              {versions.map((v) => (
                <td key={v.id}>{show(v.settings[n])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function CompareBody({ project, view, query }) {
  const base = viewBase(project.id, view.id);
  const chosen = (query.versions || "")
    .split(",")
    .filter(Boolean)
    .map(Number);
  const models = useAsync(() => modelsWithVersions(view.id), [view.id]);
  const details = useAsync(async () => {
    if (chosen.length < 2) return null;
    const versions = await Promise.all(chosen.map((id) => get(`/versions/${id}`)));
    const names = await Promise.all(versions.map((v) => get(`/models/${v.model_id}`).then((m) => m.name)));
    versions.forEach((v, i) => (v.model_name = names[i]));
    const [runs, schema] = await Promise.all([
      Promise.all(chosen.map((id) => fetchAllEvents(id).then(curves))),
      get("/settings/schema", { task: view.kind }).catch(() => null),
    ]);
    return { versions, runs, hidden: (schema && schema.not_applicable) || [] };
  }, [query.versions]);
  const list = models.data || null;
  if (models.error) return <ErrorNote error={models.error} onRetry={models.reload} />;
  if (!list) return <Spinner />;
  const versionCount = list.flatMap((m) => m.versions || []).length;
  if (versionCount < 2)
    return (
      <Empty title="Train two versions to compare them" action={<a class="btn primary" href={href(`${base}/train`)}>Train a new model version</a>}>
        This view has {versionCount} version(s).
      </Empty>
    );
  return (
    <>
      <Picker base={base} models={list} chosen={chosen} />
      {chosen.length < 2 ? (
        <p class="muted">Pick two or more versions above.</p>
      ) : details.error ? (
        <ErrorNote error={details.error} onRetry={details.reload} />
      ) : !details.data ? (
        <Spinner label="Loading the versions…" />
      ) : (
        <Comparison versions={details.data.versions} runs={details.data.runs} task={view.kind} hidden={details.data.hidden} />
      )}
    </>
  );
}

export function ComparePage({ projectId, viewId, query }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="compare" title="Compare versions">
      {(project, view) => <CompareBody project={project} view={view} query={query} />}
    </ViewFrame>
  );
}
