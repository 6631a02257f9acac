// Every model of the organisation, from the main navigation: one table row per model with its project,
// view, versions and best headline metric, linking to the view's models library where the work happens.
import { get } from "../api.js";
import { href } from "../router.js";
import { viewBase } from "../components/view-frame.jsx";
import { Badge, Empty, ErrorNote, Spinner, fmt, useAsync } from "../components/ui.jsx";
import { headline, modelsWithVersions } from "./models.jsx";

async function everyModel() {
  const projects = await get("/projects");
  const views = (await Promise.all(projects.map((p) => get(`/projects/${p.id}/views`).then((vs) => vs.map((v) => ({ ...v, project: p })))))).flat();
  const models = await Promise.all(views.map((v) => modelsWithVersions(v.id).then((ms) => ms.map((m) => ({ ...m, view: v })))));
  return { projects, views, models: models.flat() };
}

// The version with the highest headline metric, if any finished.
function best(model) {
  return (model.versions || [])
    .filter((v) => v.status === "succeeded" && v.headline)
    .reduce((top, v) => (!top || v.headline.value > top.headline.value ? v : top), null);
}

export function AllModelsPage() {
  const data = useAsync(everyModel, []);
  return (
    <main class="page">
      <div class="page-head">
        <h1>Models</h1>
      </div>
      <p class="help">Every model of every project. A model belongs to a view (the question asked of its images): open it there to train, evaluate and predict.</p>
      {data.error && <ErrorNote error={data.error} onRetry={data.reload} />}
      {!data.data ? (
        !data.error && <Spinner label="Loading models…" />
      ) : data.data.models.length === 0 ? (
        <Empty
          title="No models yet"
          action={
            data.data.views.length ? (
              <a class="btn primary" href={`#${viewBase(data.data.views[0].project.id, data.data.views[0].id)}/train`}>
                Train a model on {data.data.views[0].project.name} / {data.data.views[0].name}
              </a>
            ) : (
              <a class="btn primary" href="#/projects">
                Create a project first
              </a>
            )
          }
        >
          A model is trained on a view's annotated images.
        </Empty>
      ) : (
        <table class="data" data-testid="all-models">
          <thead>
            <tr>
              <th>Model</th>
              <th>Project / view</th>
              <th class="num">Versions</th>
              <th>Latest</th>
              <th class="num">Best</th>
              <th>Open</th>
            </tr>
          </thead>
          <tbody>
            {data.data.models.map((m) => {
              const base = viewBase(m.view.project.id, m.view.id);
              const top = best(m);
              const h = top && headline(top);
              const latest = (m.versions || [])[m.versions.length - 1];
              return (
                <tr key={m.id} data-testid="all-models-row">
                  <td>
                    <a href={`#${base}/models`}>{m.name}</a>
                  </td>
                  <td>
                    {m.view.project.name} / {m.view.name} <span class="pill">{m.view.kind}</span>
                  </td>
                  <td class="num">{(m.versions || []).length}</td>
                  <td>{latest ? <Badge status={latest.status} /> : "—"}</td>
                  <td class="num">{h ? `${fmt.percent(h.value)} ${h.label} (${top.name})` : "—"}</td>
                  <td>
                    <div class="actions">
                      <a href={`#${base}/models`}>library</a>
                      {top && <a href={href(`${base}/predict`, { version: top.id })}>predict</a>}
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </main>
  );
}
