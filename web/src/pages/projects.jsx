// Projects: list, create, open.
import { useState } from "preact/hooks";
import { get, post } from "../api.js";
import { navigate } from "../router.js";
import { Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";

function CreateProject({ onCreated }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    if (!name.trim()) return setError(new Error("Give the project a name."));
    setBusy(true);
    setError(null);
    try {
      onCreated(await post("/projects", { name: name.trim(), description: description.trim() }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="card" onSubmit={submit} data-testid="create-project">
      <h3>New project</h3>
      <div class="form-row">
        <div style={{ flex: "1 1 200px" }}>
          <label for="project-name">Name</label>
          <input id="project-name" type="text" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="e.g. Insects" />
        </div>
        <div style={{ flex: "2 1 300px" }}>
          <label for="project-description">Description (optional)</label>
          <input id="project-description" type="text" value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </div>
        <button class="btn primary" type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create project"}
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}

export function ProjectsPage() {
  const projects = useAsync(() => get("/projects"), []);
  const list = projects.data;
  return (
    <main class="page">
      <div class="page-head">
        <div>
          <h1>Projects</h1>
          <p class="sub">A project holds images; its views say what to learn from them; its models learn it.</p>
        </div>
      </div>
      <CreateProject onCreated={(p) => navigate(`/projects/${p.id}`)} />
      <h2>Your projects</h2>
      <ErrorNote error={projects.error} onRetry={projects.reload} />
      {projects.loading && !list ? (
        <Spinner label="Loading projects…" />
      ) : list && list.length === 0 ? (
        <Empty title="No projects yet">Create one above, then add images to it.</Empty>
      ) : (
        <div class="cards">
          {(list || []).map((p) => (
            <a class="card link-card" href={`#/projects/${p.id}`} key={p.id} data-testid="project-card">
              <h3>{p.name}</h3>
              <p class="meta">{p.description || "No description"}</p>
              <p class="meta">
                {p.image_count} image(s) · {p.view_count} view(s) · created {fmt.date(p.created_at)}
              </p>
            </a>
          ))}
        </div>
      )}
    </main>
  );
}
