// Train a new model version: pick or create the model, fill the settings form (generated from the
// settings schema: a basic view, the rest under "Advanced"), optionally let the server suggest values
// for this dataset (each with its reason, and questions the data cannot answer) or find the learning
// rate on the view's images, then start.
import { useMemo, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { navigate } from "../router.js";
import { SettingsForm, collect, initialTexts, parseField, toText, describeField } from "../components/settings-form.jsx";
import { RateChart, rateText } from "../components/lr-chart.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { ViewSplitCard } from "../components/view-split.jsx";
import { ErrorNote, Spinner, useAsync } from "../components/ui.jsx";
import { modelsWithVersions } from "./models.jsx";

// 422 details -> {field: message}. A field in `loc` (body.settings.<field>) takes the message; a rule
// about several fields (e.g. fine-tuning rate vs learning rate) marks the fields each clause is about.
function fieldErrors(detail, names) {
  const byField = {};
  const general = [];
  for (const d of Array.isArray(detail) ? detail : []) {
    const msg = d.msg.replace(/^Value error, /, "");
    const field = (d.loc || []).find((p) => names.includes(p));
    if (field) {
      byField[field] = msg;
      continue;
    }
    const parts = msg.split("; ");
    let placed = false;
    for (const part of parts) {
      // The field a clause is about: its subject, or a field quoted with its value ("x (0.01)", "x is 0").
      const named = names.filter((n) => part.startsWith(`${n} `) || new RegExp(`\\b${n}(?= \\(| is )`).test(part));
      for (const n of named) byField[n] = byField[n] ? `${byField[n]}; ${part}` : part;
      placed = placed || named.length > 0;
    }
    if (!placed) general.push(msg);
  }
  return { byField, general };
}

function ModelChoice({ view, models, choice, setChoice }) {
  return (
    <div class="card" style={{ marginBottom: "1rem" }}>
      <h3>Model</h3>
      <div class="form-row">
        <div style={{ flex: "1 1 240px" }}>
          <label for="model-choice">Train a version of</label>
          <select id="model-choice" value={choice.modelId} onChange={(e) => setChoice({ ...choice, modelId: e.currentTarget.value })}>
            <option value="new">a new model…</option>
            {models.map((m) => (
              <option value={m.id} key={m.id}>
                {m.name} ({(m.versions || []).length} version(s))
              </option>
            ))}
          </select>
        </div>
        {choice.modelId === "new" && (
          <div style={{ flex: "1 1 240px" }}>
            <label for="model-name">New model name</label>
            <input id="model-name" type="text" value={choice.name} onInput={(e) => setChoice({ ...choice, name: e.currentTarget.value })} />
          </div>
        )}
      </div>
      {choice.modelId === "new" && (
        <div style={{ marginTop: "0.6rem" }}>
          <label>Concepts it learns</label>
          <div class="actions" style={{ marginTop: "0.3rem" }}>
            {view.concepts.map((c) => (
              <label class="switch" key={c.id}>
                <input
                  type="checkbox"
                  checked={choice.concepts.includes(c.name)}
                  onChange={(e) =>
                    setChoice({
                      ...choice,
                      concepts: e.currentTarget.checked ? [...choice.concepts, c.name] : choice.concepts.filter((x) => x !== c.name),
                    })
                  }
                />
                {c.name}
              </label>
            ))}
          </div>
          <p class="help">A model's concepts never change; another set of concepts is another model.</p>
        </div>
      )}
    </div>
  );
}

const words = (name) => name.replace(/_/g, " ");
const valueText = (v) => (typeof v === "boolean" ? (v ? "on" : "off") : Array.isArray(v) ? v.join(", ") : String(v));

// The answer a question has in the form as it is now: the one whose settings all hold.
function currentAnswer(schema, texts, question) {
  const holds = (name, value) => {
    if (!(name in texts)) return false;
    const r = parseField(describeField(schema, name), texts[name]);
    return !r.error && JSON.stringify(r.value) === JSON.stringify(value);
  };
  const found = question.answers.find((a) => Object.entries(a.settings).every(([k, v]) => holds(k, v)));
  return found ? found.answer : null;
}

// What "Suggest settings for my data" found: each value with its reason, what it left alone and why,
// the questions the data cannot answer (an answer sets its fields), warnings, and the counts it read.
function SuggestionPanel({ suggestion, schema, texts, onAnswer, onClose }) {
  const { settings, reasons, kept = {}, questions = [], warnings = [], counts = {} } = suggestion;
  const perConcept = Object.entries(counts.train || {})
    .map(([c, n]) => `${c} ${n} / ${(counts.validation || {})[c] ?? 0}`)
    .join(" · ");
  return (
    <div class="card suggestions" data-testid="suggestions">
      <div class="suggestions-head">
        <h3>Suggested for your data</h3>
        <button type="button" class="link" onClick={onClose}>
          hide
        </button>
      </div>
      <p class="help" data-testid="suggestion-counts">
        Read from {counts.train_images} training and {counts.validation_images} validation images ({counts.validation_set}); per
        concept, training / validation: {perConcept}.
      </p>
      <ul class="suggestion-list">
        {Object.entries(settings).map(([name, value]) => (
          <li key={name} data-testid={`suggestion-${name}`}>
            <b>{words(name)}</b> <span class="value">{valueText(value)}</span> <span class="why">— {reasons[name]}</span>
          </li>
        ))}
        {Object.entries(kept).map(([name, why]) => (
          <li key={name} data-testid={`kept-${name}`}>
            <b>{words(name)}</b> <span class="value kept">kept</span> <span class="why">— {why}</span>
          </li>
        ))}
      </ul>
      <p class="help">These values are filled in below (the ones under Advanced too); change any of them.</p>
      {questions.length > 0 && (
        <div class="questions">
          <h4>Only you can tell</h4>
          {questions.map((q) => {
            const chosen = currentAnswer(schema, texts, q);
            return (
              <div class="question" key={q.setting} data-testid={`question-${q.setting}`}>
                <p>
                  <b>{q.question}</b> <span class="help">{q.why}.</span>
                </p>
                <div class="actions">
                  {q.answers.map((a) => (
                    <button
                      type="button"
                      key={a.answer}
                      class={`btn small ${chosen === a.answer ? "active" : ""}`}
                      aria-pressed={chosen === a.answer ? "true" : "false"}
                      onClick={() => onAnswer(a.settings)}
                    >
                      {a.answer}
                      <small class="sets">{Object.entries(a.settings).map(([k, v]) => `${words(k)}: ${valueText(v)}`).join(", ")}</small>
                    </button>
                  ))}
                </div>
              </div>
            );
          })}
        </div>
      )}
      {warnings.length > 0 && (
        <div class="notice warn" data-testid="suggestion-warnings">
          {warnings.map((w, i) => (
            <div key={i}>{w}</div>
          ))}
        </div>
      )}
    </div>
  );
}

// "Find for me" beside the learning rate: a range test on the view's training images (seconds once the
// backbone's features are cached; the version trained next reuses them), its curve, and "use this rate".
function FindRate({ view, request, onUse }) {
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  if (view.kind === "detection")
    return <p class="help">Not for a detector: it trains its whole detector, not a head, and starts from detection's measured rate.</p>;
  async function run() {
    setBusy(true);
    setError(null);
    try {
      setResult(await post(`/views/${view.id}/lr-find`, request()));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="find-rate" data-testid="find-rate-panel">
      <button type="button" class="btn small" onClick={run} disabled={busy} data-testid="find-rate">
        {busy ? "Trying rates on your images…" : result ? "Find again" : "Find for me"}
      </button>
      {busy && (
        <p class="help">
          A new head takes a step per batch of your training images while the rate rises from 0.000001 to 1. The first time,
          the backbone reads every image once (about a second each here); training reuses that.
        </p>
      )}
      {result && (
        <div data-testid="lr-result">
          <p class="lr-suggestion">
            Suggested: <b data-testid="lr-suggestion">{rateText(result.suggestion)}</b>: {result.reason}.
          </p>
          <RateChart result={result} />
          <div class="actions">
            <button type="button" class="btn small primary" onClick={() => onUse(rateText(result.suggestion))} data-testid="use-rate">
              Use this rate
            </button>
            <span class="help">
              Rule: {result.rule}; {result.images} training images.
            </span>
          </div>
        </div>
      )}
      <ErrorNote error={error} />
    </div>
  );
}

function TrainForm({ project, view, query, schema, groups, models: initialModels, startFrom }) {
  const [models, setModels] = useState(initialModels);
  // "Train another version" starts from the model's latest settings: change one thing, compare.
  const [texts, setTexts] = useState(() => initialTexts(schema, groups, startFrom ? startFrom.settings : {}));
  const [errors, setErrors] = useState({});
  const [reasons, setReasons] = useState({});
  const [suggestion, setSuggestion] = useState(null);
  const [general, setGeneral] = useState(null);
  const [busy, setBusy] = useState(null);
  const [choice, setChoice] = useState({
    modelId: query.model || (models.length ? String(models[models.length - 1].id) : "new"),
    name: models.length ? `${view.name} model ${models.length + 1}` : `${view.name} model`,
    concepts: view.concepts.map((c) => c.name),
  });
  const names = useMemo(() => Object.values(groups).flat(), [groups]);
  // "Advanced" is the one fold: opened, every group in it shows its fields.
  const openGroups = useMemo(() => Object.keys(groups), [groups]);

  function changeMany(updates) {
    const next = { ...texts, ...updates };
    setTexts(next);
    // Re-check as the person types, so a bad value is marked at once.
    const now = collect(schema, next).errors;
    setErrors(now);
    // "Fix the marked settings" goes once nothing is marked any more.
    if (!Object.keys(now).length) setGeneral((g) => (g && g.fixFirst ? null : g));
    setReasons((r) => ({ ...r, ...Object.fromEntries(Object.keys(updates).map((n) => [n, undefined])) }));
  }
  const change = (name, text) => changeMany({ [name]: text });

  // What the assistant's routes are asked about: the model's concepts and the settings so far.
  function assistantRequest() {
    const { values } = collect(schema, texts);
    const model = models.find((m) => String(m.id) === String(choice.modelId));
    return { concepts: model ? model.concepts : choice.concepts, settings: values };
  }

  async function suggest() {
    setBusy("suggest");
    setGeneral(null);
    try {
      const s = await post(`/views/${view.id}/suggested-settings`, assistantRequest());
      const next = { ...texts };
      for (const [k, v] of Object.entries(s.settings)) if (k in next) next[k] = toText(describeField(schema, k), v);
      setTexts(next);
      setErrors(collect(schema, next).errors);
      setReasons(s.reasons || {});
      setSuggestion(s);
    } catch (err) {
      setGeneral(err);
    } finally {
      setBusy(null);
    }
  }

  async function start(e) {
    e.preventDefault();
    setGeneral(null);
    const { values, errors: bad } = collect(schema, texts);
    setErrors(bad);
    if (Object.keys(bad).length) {
      setGeneral(Object.assign(new Error(`Fix the ${Object.keys(bad).length} marked setting(s) first.`), { fixFirst: true }));
      return;
    }
    // A detector finds objects of even one concept (the rest is background); the other tasks tell concepts apart.
    const fewest = view.kind === "detection" ? 1 : 2;
    if (choice.modelId === "new" && choice.concepts.length < fewest)
      return setGeneral(new Error(fewest === 1 ? "Pick the concept(s) the detector should find." : "A model tells concepts apart: pick at least two."));
    setBusy("start");
    try {
      let modelId = choice.modelId;
      if (modelId === "new") {
        const model = await post(`/views/${view.id}/models`, { name: choice.name.trim(), concepts: choice.concepts });
        modelId = model.id;
        // From here on the form trains this model: a retry after a refused version makes no second model.
        setModels((list) => [...list, { ...model, versions: [] }]);
        setChoice((c) => ({ ...c, modelId: String(model.id) }));
      }
      const version = await post(`/models/${modelId}/versions`, { settings: values });
      navigate(`${viewBase(project.id, view.id)}/versions/${version.id}`);
    } catch (err) {
      const { byField, general: rest } = fieldErrors(err.detail, names);
      if (Object.keys(byField).length) {
        setErrors(byField);
        setGeneral(rest.length ? new Error(rest.join("\n")) : new Error("The server refused some settings: see the marked fields."));
      } else setGeneral(err);
    } finally {
      setBusy(null);
    }
  }

  const errorCount = Object.keys(errors).length;
  return (
    <form onSubmit={start} noValidate data-testid="train-form">
      <ModelChoice view={view} models={models} choice={choice} setChoice={setChoice} />
      <ViewSplitCard view={view} />
      <div class="actions" style={{ marginBottom: "0.75rem" }}>
        <button type="button" class="btn" onClick={suggest} disabled={busy} data-testid="suggest-settings">
          {busy === "suggest" ? "Looking at your data…" : "Suggest settings for my data"}
        </button>
        <button type="button" class="btn" onClick={() => (setTexts(initialTexts(schema, groups)), setErrors({}), setReasons({}), setSuggestion(null))}>
          Reset all to defaults
        </button>
      </div>
      {startFrom && (
        <div class="notice" data-testid="start-from">
          The settings start from version <b>{startFrom.name}</b>'s
          {startFrom.changes ? (
            <>
              {" "}with what its advice suggested:{" "}
              <span data-testid="start-from-changes">
                {Object.entries(startFrom.changes).map(([k, v]) => `${k.replace(/_/g, " ")} ${JSON.stringify(v)}`).join(", ")}
              </span>
              ; train it, then compare the two.
            </>
          ) : (
            "; change what you want to try, then compare the two."
          )}
        </div>
      )}
      {suggestion && (
        <SuggestionPanel
          suggestion={suggestion}
          schema={schema}
          texts={texts}
          onAnswer={(settings) => changeMany(Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, toText(describeField(schema, k), v)])))}
          onClose={() => setSuggestion(null)}
        />
      )}
      <SettingsForm
        schema={schema}
        groups={groups}
        texts={texts}
        errors={errors}
        reasons={reasons}
        onChange={change}
        openGroups={openGroups}
        extras={{ learning_rate: <FindRate view={view} request={assistantRequest} onUse={(rate) => change("learning_rate", rate)} /> }}
      />
      <div class="sticky-bar">
        <button class="btn primary" type="submit" disabled={!!busy} data-testid="start-training">
          {busy === "start" ? "Starting…" : "Start training"}
        </button>
        {errorCount > 0 && <span class="field-error">{errorCount} setting(s) to fix</span>}
        <ErrorNote error={general} />
      </div>
    </form>
  );
}

function parseChanges(text) {
  if (!text) return null;
  try {
    const changes = JSON.parse(text);
    return changes && typeof changes === "object" && !Array.isArray(changes) && Object.keys(changes).length ? changes : null;
  } catch {
    return null; // a hand-edited address: start from the version's settings as they are
  }
}

// The form of the view's task: its own defaults, and only the settings that apply to it (a detector
// has no classification head; only detection reads the Detection group).
function TrainLoader({ project, view, query }) {
  const deps = useAsync(async () => {
    const [schema, models] = await Promise.all([get("/settings/schema", { task: view.kind }), modelsWithVersions(view.id)]);
    const model = query.model && models.find((m) => String(m.id) === String(query.model));
    const latest = model && model.versions.length ? model.versions[model.versions.length - 1] : null;
    // "Try it" from a version's advice: that version's settings with the advice's changes (`set`).
    const fromId = query.from && model && model.versions.some((v) => String(v.id) === String(query.from)) ? query.from : latest && latest.id;
    const startFrom = fromId ? await get(`/versions/${fromId}`) : null;
    const changes = parseChanges(query.set);
    if (startFrom && changes) startFrom.settings = { ...startFrom.settings, ...changes };
    return { schema, models, startFrom: startFrom && { ...startFrom, changes } };
  }, [view.id, view.kind]);
  if (deps.error) return <ErrorNote error={deps.error} onRetry={deps.reload} />;
  if (!deps.data) return <Spinner label="Loading the settings…" />;
  const { schema, models, startFrom } = deps.data;
  const hidden = schema.not_applicable || [];
  return (
    <>
      {hidden.length > 0 && (
        <p class="help" data-testid="task-settings-note" style={{ marginTop: 0, marginBottom: "0.75rem" }}>
          Settings for a <b>{view.kind}</b> model{Object.keys(schema.task_defaults || {}).length ? `, starting from ${view.kind}'s own defaults` : ""}.{" "}
          Not shown, as they do not apply to {view.kind}: {hidden.map((n) => n.replace(/_/g, " ")).join(", ")}.
        </p>
      )}
      <TrainForm project={project} view={view} query={query} schema={schema.schema} groups={schema.groups} models={models} startFrom={startFrom} />
    </>
  );
}

export function TrainPage({ projectId, viewId, query }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="models" title="Train a new model version">
      {(project, view) => <TrainLoader project={project} view={view} query={query} />}
    </ViewFrame>
  );
}
