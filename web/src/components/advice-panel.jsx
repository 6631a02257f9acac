// "What to try next" after a run (GET /versions/{id}/advice): each finding with its evidence, the
// settings to change and why, and a way to the train form for the next version.
import { get } from "../api.js";
import { href } from "../router.js";
import { ErrorNote, Spinner, useAsync } from "./ui.jsx";

const settingName = (name) => name.replace(/_/g, " ");
const shown = (v) => (typeof v === "boolean" ? (v ? "on" : "off") : Array.isArray(v) ? v.join(", ") : String(v));

function Changes({ item }) {
  return (
    <ul class="advice-changes" data-testid="advice-changes" style={{ margin: "0.35rem 0", paddingLeft: "1.2rem" }}>
      {Object.entries(item.changes).map(([name, value]) => (
        <li key={name} data-setting={name}>
          <b>{settingName(name)}</b>: {shown(item.current[name])} → <b>{shown(value)}</b>
        </li>
      ))}
    </ul>
  );
}

function AdviceItem({ item, number, trainHref }) {
  const changes = Object.keys(item.changes).length > 0;
  return (
    <li data-testid="advice-item" data-rule={item.rule} style={{ marginBottom: "0.9rem" }}>
      <div style={{ fontWeight: 600 }}>
        {number}. {item.title}
      </div>
      <div class="help" style={{ margin: "0.2rem 0" }}>
        Evidence: <span data-testid="advice-evidence">{item.evidence}</span>.
      </div>
      {changes ? (
        <>
          <div style={{ marginTop: "0.35rem" }}>Next version, change:</div>
          <Changes item={item} />
        </>
      ) : null}
      <div class="muted" style={{ fontSize: "0.9rem" }}>
        Why: {item.why}.
      </div>
      {changes && (
        <a class="btn small" style={{ marginTop: "0.4rem" }} href={trainHref(item)} data-testid="advice-train">
          Open the train form to try it
        </a>
      )}
    </li>
  );
}

export function AdvicePanel({ version, base }) {
  const advice = useAsync(() => get(`/versions/${version.id}/advice`), [version.id, version.status]);
  // The form starts from the model's latest settings; `set` carries the changes for a form that reads it.
  const trainHref = (item) => href(`${base}/train`, { model: version.model_id, from: version.id, set: JSON.stringify(item.changes) });
  return (
    <section class="card" data-testid="advice-panel" style={{ margin: "1rem 0" }}>
      <h3 style={{ marginTop: 0 }}>What to try next</h3>
      {advice.error ? (
        <ErrorNote error={advice.error} onRetry={advice.reload} />
      ) : !advice.data ? (
        <Spinner label="Reading the run's curves…" />
      ) : advice.data.items.length === 0 ? (
        <p class="help" data-testid="advice-none" style={{ marginBottom: 0 }}>
          {advice.data.reason.charAt(0).toUpperCase() + advice.data.reason.slice(1)}.
        </p>
      ) : (
        <>
          <p class="help" style={{ marginTop: 0 }}>
            From this run's own curves and evaluation. The train form starts from this model's latest settings: change the
            settings named below, train, then compare the two versions.
          </p>
          <ol style={{ listStyle: "none", padding: 0, margin: 0 }}>
            {advice.data.items.map((item, i) => (
              <AdviceItem key={item.rule} item={item} number={i + 1} trainHref={trainHref} />
            ))}
          </ol>
        </>
      )}
    </section>
  );
}
