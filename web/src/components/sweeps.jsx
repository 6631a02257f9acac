// "Try N variations": a sweep of a model's head settings on cached features (POST /models/{id}/sweeps), its
// trials ranked as the workers finish them, and the version its best trial became.
import { useState } from "preact/hooks";
import { get, post } from "../api.js";
import { Badge, fmt } from "./ui.jsx";

const METRIC_NAMES = { val_accuracy: "accuracy", val_map: "mAP" };
const SHOWN = 10;
// A trial's state in the colours of a version's status (pruned: stopped early, as a cancelled run).
const STATE_STYLE = { complete: "succeeded", pruned: "cancelled", failed: "failed", running: "running" };
const isFinished = (s) => !["queued", "running"].includes(s.status);
export const sweepIsLive = (s) => !isFinished(s);

// A searched value as the table shows it.
function value(name, v) {
  if (v == null) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (name === "learning_rate" || name === "weight_decay") return Number(v).toExponential(1);
  if (typeof v === "number" && !Number.isInteger(v)) return v.toFixed(2);
  return String(v);
}

const COLUMNS = {
  learning_rate: "rate",
  optimizer: "optimizer",
  head_layers: "hidden layers",
  head_units: "units",
  dropout: "dropout",
  weight_decay: "weight decay",
  augmented_copies: "copies",
  balance_concepts: "balance",
  label_smoothing: "smoothing",
};

// The start form: how many variations, from the model's latest finished version's settings (or the defaults).
export function TryVariations({ model, base, onCreated }) {
  const [trials, setTrials] = useState(20);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const start = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // The version's settings whole (the list shows a summary only): each trial changes the searched ones.
      const settings = base ? (await get(`/versions/${base.id}`)).settings : {};
      const sweep = await post(`/models/${model.id}/sweeps`, { trials: Number(trials), settings });
      onCreated(sweep);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="sweep-start" onSubmit={start} data-testid="sweep-form" style={{ display: "flex", gap: "0.5rem", alignItems: "center", flexWrap: "wrap" }}>
      <label for={`sweep-trials-${model.id}`}>Variations</label>
      <input id={`sweep-trials-${model.id}`} type="number" min="1" max="200" value={trials} style={{ width: "5rem" }}
        onInput={(e) => setTrials(e.currentTarget.value)} data-testid="sweep-trials" />
      <button class="btn small primary" type="submit" disabled={busy || !(trials >= 1 && trials <= 200)} data-testid="try-variations">
        {busy ? "Starting…" : `Try ${trials || "N"} variations`}
      </button>
      <span class="muted meta">
        head settings tried on the same cached features{base ? `, starting from ${base.name}` : ""}; the best becomes a new version
      </span>
      {error && <p class="error" role="alert" style={{ width: "100%" }}>{error}</p>}
    </form>
  );
}

function progress(sweep) {
  const rows = sweep.results || [];
  const count = (state) => rows.filter((r) => r.state === state).length;
  const finished = rows.length - count("running");
  const parts = [`${finished} of ${sweep.trials} trials finished`];
  if (count("pruned")) parts.push(`${count("pruned")} stopped early (pruned)`);
  if (count("failed")) parts.push(`${count("failed")} failed`);
  return parts.join(" · ");
}

export function SweepCard({ sweep, versionHref, versions = [] }) {
  const bestVersion = versions.find((v) => v.id === sweep.best_version_id);
  const [all, setAll] = useState(false);
  const rows = sweep.results || [];
  const metric = METRIC_NAMES[sweep.monitor] || sweep.monitor;
  const searched = sweep.searched.filter((name) => COLUMNS[name]);
  const shown = all ? rows : rows.slice(0, SHOWN);
  const best = rows.find((r) => r.state === "complete");
  return (
    <div class="sweep" data-testid="sweep-card" style={{ marginTop: "0.75rem" }}>
      <h4 style={{ margin: "0.25rem 0" }}>
        Sweep {sweep.id}: {sweep.trials} variations <Badge status={sweep.status} />
      </h4>
      <p class="meta" data-testid="sweep-progress">
        {progress(sweep)}
        {best && ` · best${isFinished(sweep) ? "" : " so far"}: trial ${best.number}, ${fmt.percent(best[sweep.monitor])} ${metric}`}
      </p>
      {sweep.error && <p class="error">{sweep.error}</p>}
      {sweep.best_version_id && (
        <p data-testid="sweep-best">
          The best trial's settings became a version:{" "}
          <a href={versionHref(sweep.best_version_id)} data-testid="sweep-best-version">
            {bestVersion ? bestVersion.name : `version ${sweep.best_version_id}`}
          </a>
          {bestVersion && <> <Badge status={bestVersion.status} /></>}
        </p>
      )}
      {rows.length > 0 && (
        <table class="data" data-testid="sweep-trials">
          <thead>
            <tr>
              <th class="num">Rank</th>
              <th class="num">Trial</th>
              <th>State</th>
              <th class="num">{metric}</th>
              <th class="num">Epochs</th>
              {searched.map((name) => (
                <th key={name} class={name === "optimizer" ? "" : "num"}>{COLUMNS[name]}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.number} data-testid="sweep-trial-row" class={row.rank === 1 && row.state === "complete" ? "best" : ""}>
                <td class="num">{row.rank}</td>
                <td class="num">{row.number}</td>
                <td>
                  <span class={`badge ${STATE_STYLE[row.state] || ""}`}>{row.state}</span>
                </td>
                <td class="num">{fmt.percent(row[sweep.monitor])}</td>
                <td class="num">{row.epochs ?? "—"}</td>
                {searched.map((name) => (
                  <td key={name} class={name === "optimizer" ? "" : "num"} style={{ whiteSpace: "nowrap" }}>{value(name, row[name])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {rows.length > SHOWN && (
        <button class="btn small" type="button" onClick={() => setAll(!all)}>
          {all ? `Show the top ${SHOWN}` : `Show all ${rows.length} trials`}
        </button>
      )}
    </div>
  );
}
