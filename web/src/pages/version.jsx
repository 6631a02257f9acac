// The training page: live charts while the version trains, status, elapsed time, cancel, best epoch;
// once it has finished, what to try next.
import { useEffect, useRef, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { href } from "../router.js";
import { TrainingCharts } from "../components/training-charts.jsx";
import { AdvicePanel } from "../components/advice-panel.jsx";
import { fetchEvents } from "../components/metrics.js";
import { STAGE_NAMES, curves, metricLabel, preparingShort, progressOf, stageText } from "../components/curves.js";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Badge, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";
import { headline, trainingSeconds } from "./models.jsx";

const POLL_MS = 1000;
const live = (v) => v && (v.status === "queued" || v.status === "running");

// Polls the version and appends its new events (by row id) until it finishes.
function useVersionStream(versionId) {
  const [version, setVersion] = useState(null);
  const [events, setEvents] = useState([]);
  const [error, setError] = useState(null);
  const lastId = useRef(0);
  useEffect(() => {
    let stopped = false;
    let timer = null;
    async function tick() {
      try {
        const v = await get(`/versions/${versionId}`);
        // Read events after the status: a finished version's last events are then already stored.
        const fresh = await fetchEvents(versionId, lastId.current);
        if (stopped) return;
        if (fresh.length) {
          lastId.current = fresh[fresh.length - 1]._id;
          setEvents((old) => [...old, ...fresh]);
        }
        setVersion(v);
        setError(null);
        if (live(v) || fresh.length) timer = setTimeout(tick, POLL_MS);
      } catch (err) {
        if (stopped) return;
        setError(err);
        timer = setTimeout(tick, POLL_MS * 3);
      }
    }
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [versionId]);
  return { version, events, error, setVersion };
}

function Elapsed({ version }) {
  const [, setNow] = useState(0);
  useEffect(() => {
    if (!live(version)) return undefined;
    const id = setInterval(() => setNow((n) => n + 1), 1000);
    return () => clearInterval(id);
  }, [version.status]);
  return <>{fmt.duration(trainingSeconds(version))}</>;
}

function Progress({ version, events }) {
  const { stage, features } = progressOf(events);
  const c = curves(events);
  const epochs = version.settings ? version.settings.epochs + (version.settings.fine_tune ? version.settings.fine_tune_epochs : 0) : null;
  return (
    <div class="stats" data-testid="training-stats">
      <div class="stat">
        <b>
          <Badge status={version.status} />
        </b>
        <span>status</span>
      </div>
      <div class="stat">
        <b data-testid="elapsed">
          <Elapsed version={version} />
        </b>
        <span>elapsed</span>
      </div>
      <div class="stat">
        <b data-testid="stage">{!live(version) ? "finished" : stage ? STAGE_NAMES[stage] || stage.replace(/_/g, " ") : version.status === "queued" ? "waiting for a worker" : "starting"}</b>
        <span data-testid="stage-detail">{live(version) && stage === "features" ? preparingShort(features) : "stage"}</span>
      </div>
      <div class="stat">
        <b data-testid="epochs-done">
          {c.epochsDone}
          {epochs ? ` / ${epochs}` : ""}
        </b>
        <span>epochs (at most)</span>
      </div>
      <div class="stat">
        <b data-testid="best-value">{c.bestValue != null ? fmt.percent(c.bestValue) : "—"}</b>
        <span>best {metricLabel(c.headline)}{c.bestEpoch != null ? ` (epoch ${c.bestEpoch})` : ""}</span>
      </div>
    </div>
  );
}

// Until the first epoch, what the run is doing (preparing images can take minutes before any chart has a value).
function Waiting({ version, events }) {
  if (!live(version) || events.some((e) => e.type === "epoch")) return null;
  const { stage, features } = progressOf(events);
  // waiting_for: no running worker can take it (it asks for GPUs none of them has), with what they have.
  const queued = version.waiting_for ? `Queued, ${version.waiting_for}.` : "Queued: the run starts when a worker is free.";
  const text = version.status === "queued" ? queued : stageText(stage, features);
  return (
    <div class="notice" data-testid="run-waiting">
      {text}
    </div>
  );
}

function VersionView({ project, view, versionId }) {
  const base = viewBase(project.id, view.id);
  const { version, events, error, setVersion } = useVersionStream(versionId);
  const model = useAsync(() => (version ? get(`/models/${version.model_id}`) : null), [version && version.model_id]);
  const [cancelling, setCancelling] = useState(false);
  const [cancelError, setCancelError] = useState(null);
  if (!version) return error ? <ErrorNote error={error} /> : <Spinner label="Loading the version…" />;
  async function cancel() {
    setCancelling(true);
    try {
      setVersion(await post(`/versions/${version.id}/cancel`));
    } catch (err) {
      setCancelError(err);
    } finally {
      setCancelling(false);
    }
  }
  const h = headline(version);
  return (
    <>
      <div class="page-head">
        <div>
          <h2 style={{ margin: 0 }} data-testid="version-title">
            {model.data ? `${model.data.name} · ` : ""}
            {version.name}
          </h2>
          <p class="sub">
            created {fmt.date(version.created_at)}
            {h && version.status === "succeeded" ? ` · ${fmt.percent(h.value)} ${h.label}` : ""}
          </p>
        </div>
        <div class="actions">
          {live(version) && (
            <button class="btn danger" onClick={cancel} disabled={cancelling || version.cancel_requested} data-testid="cancel-training">
              {version.cancel_requested || cancelling ? "Cancelling…" : "Cancel training"}
            </button>
          )}
          {version.status === "succeeded" && (
            <>
              <a class="btn primary" href={`#${base}/versions/${version.id}/evaluation`}>
                Evaluation
              </a>
              <a class="btn" href={href(`${base}/predict`, { version: version.id })}>
                Predict
              </a>
            </>
          )}
          <a class="btn" href={href(`${base}/train`, { model: version.model_id })}>
            Train another version
          </a>
        </div>
      </div>
      <ErrorNote error={cancelError || error} />
      {version.status === "failed" && <ErrorNote error={new Error(`Training failed: ${version.error || "no message"}`)} />}
      {!live(version) && version.status !== "failed" && version.summary?.message ? (
        // Why the run ended where it did ("stopped early (12 of 20 head epochs): no gain ...; kept head epoch 7").
        <div class="notice">{version.summary.message.charAt(0).toUpperCase() + version.summary.message.slice(1)}.</div>
      ) : null}
      <Progress version={version} events={events} />
      <Waiting version={version} events={events} />
      {!live(version) && <AdvicePanel version={version} base={base} />}
      <TrainingCharts events={events} finished={!live(version)} />
    </>
  );
}

export function VersionPage({ projectId, viewId, versionId }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="models" title="Training">
      {(project, view) => <VersionView project={project} view={view} versionId={versionId} />}
    </ViewFrame>
  );
}
