// A project: its views (what to learn: classification, tagging or detection) and a way to add one.
import { useState } from "preact/hooks";
import { get, post } from "../api.js";
import { navigate } from "../router.js";
import { Empty, ErrorNote, Spinner, useAsync } from "../components/ui.jsx";

const KINDS = [
  ["classification", "Classification", "each image shows exactly one concept"],
  ["tagging", "Tagging", "each image shows any number of concepts (or none)"],
  ["detection", "Detection", "boxes around each object, with its concept"],
];

function CreateView({ projectId, onCreated }) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState("classification");
  const [concepts, setConcepts] = useState("");
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    setError(null);
    if (!name.trim()) return setError(new Error("Give the view a name, e.g. 'species'."));
    const names = concepts
      .split(",")
      .map((c) => c.trim())
      .filter(Boolean);
    try {
      const view = await post(`/projects/${projectId}/views`, { name: name.trim(), kind, concepts: names });
      onCreated(view);
    } catch (err) {
      setError(err);
    }
  }
  return (
    <form class="card" onSubmit={submit} data-testid="create-view">
      <h3>New view</h3>
      <p class="help" style={{ marginTop: 0 }}>
        A view is one question asked of the project's images. Concepts are the answers; you can add more later.
      </p>
      <div class="form-row">
        <div style={{ flex: "1 1 160px" }}>
          <label for="view-name">Name</label>
          <input id="view-name" type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="e.g. species" />
        </div>
        <div style={{ flex: "1 1 160px" }}>
          <label for="view-kind">Task</label>
          <select id="view-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            {KINDS.map(([k, label]) => (
              <option value={k} key={k}>
                {label}
              </option>
            ))}
          </select>
        </div>
        <div style={{ flex: "2 1 260px" }}>
          <label for="view-concepts">Concepts, comma-separated</label>
          <input id="view-concepts" type="text" value={concepts} onInput={(e) => setConcepts(e.currentTarget.value)} placeholder="e.g. ants, bees" />
        </div>
        <button class="btn primary" type="submit">
          Create view
        </button>
      </div>
      <p class="help">
        {KINDS.find(([k]) => k === kind)[1]}: {KINDS.find(([k]) => k === kind)[2]}.
      </p>
      <ErrorNote error={error} />
    </form>
  );
}

export function ProjectPage({ projectId }) {
  const ctx = useAsync(async () => {
    const [project, views] = await Promise.all([get(`/projects/${projectId}`), get(`/projects/${projectId}/views`)]);
    return { project, views };
  }, [projectId]);
  if (ctx.error)
    return (
      <main class="page">
        <ErrorNote error={ctx.error} onRetry={ctx.reload} />
      </main>
    );
  if (!ctx.data)
    return (
      <main class="page">
        <Spinner />
      </main>
    );
  const { project, views } = ctx.data;
  return (
    <main class="page">
      <div class="crumbs">
        <a href="#/">Projects</a> / {project.name}
      </div>
      <div class="page-head">
        <div>
          <h1>{project.name}</h1>
          <p class="sub">{project.description}</p>
        </div>
      </div>
      <div class="stats">
        <div class="stat">
          <b>{project.image_count}</b>
          <span>images</span>
        </div>
        <div class="stat">
          <b>{views.length}</b>
          <span>views</span>
        </div>
      </div>
      <h2>Views</h2>
      {views.length === 0 ? (
        <Empty title="No views yet">Create a view below to say what the model should learn, then add images.</Empty>
      ) : (
        <div class="cards">
          {views.map((v) => (
            <a class="card link-card" href={`#/projects/${projectId}/views/${v.id}/images`} key={v.id} data-testid="view-card">
              <h3>
                {v.name} <span class="pill">{v.kind}</span>
              </h3>
              <p class="meta">{v.concepts.join(", ") || "no concepts yet"}</p>
              <p class="meta">
                {v.annotated} of {v.images} image(s) annotated
              </p>
            </a>
          ))}
        </div>
      )}
      <h2>Add a view</h2>
      <CreateView projectId={projectId} onCreated={(v) => navigate(`/projects/${projectId}/views/${v.id}/images`)} />
    </main>
  );
}
