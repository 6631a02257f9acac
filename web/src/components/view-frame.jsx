// The frame of every page inside a view: breadcrumbs, the view's tabs, and the project/view data.
import { get } from "../api.js";
import { ErrorNote, Spinner, Tabs, useAsync } from "./ui.jsx";

export const viewBase = (projectId, viewId) => `/projects/${projectId}/views/${viewId}`;

// The project and the view, with the view's concepts as [{id, name, image_count}] (in creation order,
// which the number keys follow).
export function useView(projectId, viewId) {
  return useAsync(async () => {
    const [project, view, concepts] = await Promise.all([
      get(`/projects/${projectId}`),
      get(`/views/${viewId}`),
      get(`/views/${viewId}/concepts`),
    ]);
    if (view.project_id !== Number(projectId)) throw new Error(`view ${viewId} is not in project ${projectId}`);
    return { project, view: { ...view, concepts } };
  }, [projectId, viewId]);
}

const TABS = [
  ["images", "Images"],
  ["annotate", "Annotate"],
  ["models", "Models"],
  ["compare", "Compare"],
  ["predict", "Predict"],
];

/** Renders crumbs + tabs, then children(project, view, reload) once both are loaded. */
export function ViewFrame({ projectId, viewId, tab, title, children, actions }) {
  const ctx = useView(projectId, viewId);
  const base = `#${viewBase(projectId, viewId)}`;
  if (ctx.error) {
    return (
      <main class="page">
        <ErrorNote error={ctx.error} onRetry={ctx.reload} />
        <a href="#/">Back to projects</a>
      </main>
    );
  }
  if (!ctx.data) {
    return (
      <main class="page">
        <Spinner />
      </main>
    );
  }
  const { project, view } = ctx.data;
  return (
    <main class="page">
      <div class="crumbs">
        <a href="#/">Projects</a> / <a href={`#/projects/${project.id}`}>{project.name}</a> / {view.name}{" "}
        <span class="pill">{view.kind}</span>
      </div>
      <div class="page-head">
        <h1>{title}</h1>
        {actions && <div class="actions">{typeof actions === "function" ? actions(project, view) : actions}</div>}
      </div>
      <Tabs active={tab} items={TABS.map(([key, label]) => ({ key, label, href: `${base}/${key}` }))} />
      {children(project, view, ctx.reload)}
    </main>
  );
}
