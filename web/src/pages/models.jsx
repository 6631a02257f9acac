// Models library: every model of the view and its versions, with status, headline metric, training time, links.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { href } from "../router.js";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Badge, Empty, ErrorNote, Spinner, fmt, usePolling } from "../components/ui.jsx";
import { SweepCard, TryVariations, sweepIsLive } from "../components/sweeps.jsx";

const METRIC_NAMES = { val_accuracy: "accuracy", val_map: "mAP", val_map50: "mAP@0.5" };

// The version's headline metric (the API's `headline`: {name, value}) as {label, value}.
export function headline(version) {
  const h = version.headline;
  return h ? { label: METRIC_NAMES[h.name] || h.name.replace(/_/g, " "), value: h.value } : null;
}

export function trainingSeconds(v) {
  if (!v.started_at) return null;
  return ((v.finished_at ? new Date(v.finished_at) : new Date()) - new Date(v.started_at)) / 1000;
}

// The view's models, each with its versions (oldest first).
export async function modelsWithVersions(viewId) {
  const models = await get(`/views/${viewId}/models`);
  const versions = await Promise.all(models.map((m) => get(`/models/${m.id}/versions`)));
  return models.map((m, i) => ({ ...m, versions: versions[i] }));
}

// ... and each model's sweeps (newest first), with their trials so far.
async function modelsWithSweeps(viewId) {
  const models = await modelsWithVersions(viewId);
  const sweeps = await Promise.all(models.map((m) => get(`/models/${m.id}/sweeps`)));
  return models.map((m, i) => ({ ...m, sweeps: sweeps[i] }));
}

// A sweep tries variations of the model's latest finished version (its settings are the sweep's base).
const latestFinished = (model) => [...(model.versions || [])].reverse().find((v) => v.status === "succeeded") || null;

const isLive = (v) => v.status === "queued" || v.status === "running";

function Library({ project, view }) {
  const base = viewBase(project.id, view.id);
  const [live, setLive] = useState(false);
  const models = usePolling(() => modelsWithSweeps(view.id), [view.id], { interval: 2000, active: live });
  const list = models.data || null;
  const anyLive = !!list && list.some((m) => m.versions.some(isLive) || m.sweeps.some(sweepIsLive));
  const [trying, setTrying] = useState(null); // the model whose "Try variations" form is open
  useEffect(() => setLive(anyLive), [anyLive]);
  if (models.error && !list) return <ErrorNote error={models.error} onRetry={models.reload} />;
  if (!list) return <Spinner label="Loading models…" />;
  if (list.length === 0)
    return (
      <Empty title="No models yet" action={<a class="btn primary" href={`#${base}/train`}>Train a new model version</a>}>
        A model learns the concepts of this view from its annotated images.
      </Empty>
    );
  const finished = list.flatMap((m) => m.versions || []).filter((v) => v.status === "succeeded");
  return (
    <>
      {list.map((model) => (
        <section class="card" style={{ marginBottom: "1rem" }} key={model.id} data-testid="model-card">
          <div class="page-head" style={{ marginBottom: "0.5rem" }}>
            <div>
              <h3>{model.name}</h3>
              <p class="meta muted">concepts: {model.concepts.join(", ")}</p>
            </div>
            <div class="actions">
              <a class="btn small" href={href(`${base}/train`, { model: model.id })}>
                Train a new version
              </a>
              <button class="btn small" type="button" data-testid="open-sweep-form"
                onClick={() => setTrying(trying === model.id ? null : model.id)}>
                Try variations…
              </button>
            </div>
          </div>
          {trying === model.id && (
            <TryVariations model={model} base={latestFinished(model)}
              onCreated={() => { setTrying(null); setLive(true); models.reload(); }} />
          )}
          {(model.versions || []).length === 0 ? (
            <p class="muted">No versions yet.</p>
          ) : (
            <table class="data">
              <thead>
                <tr>
                  <th>Version</th>
                  <th>Status</th>
                  <th class="num">Headline metric</th>
                  <th class="num">Training time</th>
                  <th>Created</th>
                  <th>Open</th>
                </tr>
              </thead>
              <tbody>
                {model.versions.map((v) => {
                  const h = headline(v);
                  return (
                    <tr key={v.id} data-testid="version-row">
                      <td>
                        <a href={`#${base}/versions/${v.id}`}>{v.name}</a>
                      </td>
                      <td>
                        <Badge status={v.status} />
                      </td>
                      <td class="num">{h ? `${fmt.percent(h.value)} ${h.label}` : "—"}</td>
                      <td class="num">{fmt.duration(trainingSeconds(v))}</td>
                      <td>{fmt.date(v.created_at)}</td>
                      <td>
                        <div class="actions">
                          <a href={`#${base}/versions/${v.id}`}>{isLive(v) ? "live training" : "training"}</a>
                          {v.status === "succeeded" && <a href={`#${base}/versions/${v.id}/evaluation`}>evaluation</a>}
                          {v.status === "succeeded" && <a href={href(`${base}/predict`, { version: v.id })}>predict</a>}
                        </div>
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
          {model.sweeps.map((sweep) => (
            <SweepCard key={sweep.id} sweep={sweep} versions={model.versions} versionHref={(id) => `#${base}/versions/${id}`} />
          ))}
        </section>
      ))}
      {finished.length >= 2 && (
        <p>
          <a class="btn" href={href(`${base}/compare`, { versions: finished.slice(-2).map((v) => v.id).join(",") })}>
            Compare the last two finished versions
          </a>
        </p>
      )}
    </>
  );
}

export function ModelsPage({ projectId, viewId }) {
  return (
    <ViewFrame
      projectId={projectId}
      viewId={viewId}
      tab="models"
      title="Models"
      actions={
        <a class="btn primary" href={`#${viewBase(projectId, viewId)}/train`} data-testid="train-new-version">
          Train a new model version
        </a>
      }
    >
      {(project, view) => <Library project={project} view={view} />}
    </ViewFrame>
  );
}
