// Train a new model version: pick or create the model, fill the settings form (generated from the
// settings schema), optionally let the server suggest values for this dataset, then start.
import { useMemo, useState } from "preact/hooks";
import { get, post } from "../api.js";
import { navigate } from "../router.js";
import { SettingsForm, collect, initialTexts, toText, describeField } from "../components/settings-form.jsx";
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

function TrainForm({ project, view, query, schema, groups, models: initialModels, startFrom }) {
  const [models, setModels] = useState(initialModels);
  // "Train another version" starts from the model's latest settings: change one thing, compare.
  const [texts, setTexts] = useState(() => initialTexts(schema, groups, startFrom ? startFrom.settings : {}));
  const [errors, setErrors] = useState({});
  const [reasons, setReasons] = useState({});
  const [warnings, setWarnings] = useState([]);
  const [general, setGeneral] = useState(null);
  const [busy, setBusy] = useState(null);
  const [choice, setChoice] = useState({
    modelId: query.model || (models.length ? String(models[models.length - 1].id) : "new"),
    name: models.length ? `${view.name} model ${models.length + 1}` : `${view.name} model`,
    concepts: view.concepts.map((c) => c.name),
  });
  const names = useMemo(() => Object.values(groups).flat(), [groups]);
  // The first groups open, and the task's own group (detection's) wherever it is.
  const openGroups = useMemo(() => {
    const all = Object.keys(groups);
    const own = all.find((g) => g.toLowerCase() === view.kind);
    return own ? [...all.slice(0, 3), own] : all.slice(0, 4);
  }, [groups, view.kind]);

  function change(name, text) {
    const next = { ...texts, [name]: text };
    setTexts(next);
    // Re-check as the person types, so a bad value is marked at once.
    const now = collect(schema, next).errors;
    setErrors(now);
    // "Fix the marked settings" goes once nothing is marked any more.
    if (!Object.keys(now).length) setGeneral((g) => (g && g.fixFirst ? null : g));
    setReasons((r) => ({ ...r, [name]: undefined }));
  }

  async function suggest() {
    setBusy("suggest");
    setGeneral(null);
    try {
      const { values } = collect(schema, texts);
      const model = models.find((m) => String(m.id) === String(choice.modelId));
      const s = await post(`/views/${view.id}/suggested-settings`, { concepts: model ? model.concepts : choice.concepts, settings: values });
      const next = { ...texts };
      for (const [k, v] of Object.entries(s.settings)) next[k] = toText(describeField(schema, k), v);
      setTexts(next);
      setErrors(collect(schema, next).errors);
      setReasons(s.reasons || {});
      setWarnings(s.warnings || []);
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
        <button type="button" class="btn" onClick={() => (setTexts(initialTexts(schema, groups)), setErrors({}), setReasons({}), setWarnings([]))}>
          Reset all to defaults
        </button>
      </div>
      {startFrom && (
        <div class="notice" data-testid="start-from">
          The settings start from version <b>{startFrom.name}</b>'s; change what you want to try, then compare the two.
        </div>
      )}
      {warnings.length > 0 && (
        <div class="notice warn">
          {warnings.map((w, i) => (
            <div key={i}>{w}</div>
          ))}
        </div>
      )}
      {Object.values(reasons).some(Boolean) && <div class="notice">Suggested values are filled in; each says why under its field.</div>}
      <SettingsForm schema={schema} groups={groups} texts={texts} errors={errors} reasons={reasons} onChange={change} openGroups={openGroups} />
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

// The form of the view's task: its own defaults, and only the settings that apply to it (a detector
// has no classification head; only detection reads the Detection group).
function TrainLoader({ project, view, query }) {
  const deps = useAsync(async () => {
    const [schema, models] = await Promise.all([get("/settings/schema", { task: view.kind }), modelsWithVersions(view.id)]);
    const model = query.model && models.find((m) => String(m.id) === String(query.model));
    const latest = model && model.versions.length ? model.versions[model.versions.length - 1] : null;
    const startFrom = latest ? await get(`/versions/${latest.id}`) : null;
    return { schema, models, startFrom };
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
