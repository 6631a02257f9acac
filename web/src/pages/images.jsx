// Images of a view: upload, import an annotated archive, export the annotations, filter, page through thumbnails.
import { useState } from "preact/hooks";
import { get } from "../api.js";
import { href, navigate } from "../router.js";
import { AnnotationExport } from "../components/annotation-export.jsx";
import { ArchiveImport, ImageUpload } from "../components/upload.jsx";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { Empty, ErrorNote, ProjectImage, Spinner, useAsync } from "../components/ui.jsx";

const PAGE_SIZE = 48;

// What an image shows in the view, in a few words (the listing carries each image's annotation).
export function labelsOf(image, kind) {
  const a = image.annotation;
  if (!a || !a.annotated) return "";
  if (kind === "detection") return `${a.boxes.length} box${a.boxes.length === 1 ? "" : "es"}`;
  return a.concepts.join(", ") || "without concept";
}

// The side of the view's split an image is on (the listing's `side`), as a tile shows it.
const SIDE_NAMES = { train: "training", val: "validation", test: "test" };
function SideBadge({ side }) {
  return (
    <span
      class="pill side-badge"
      data-testid="side-badge"
      data-side={side || "none"}
      title={side ? `on the ${SIDE_NAMES[side]} side of the view's split` : "not placed yet: the next version puts it on a side"}
      style={{
        position: "absolute",
        top: "0.35rem",
        left: "0.35rem",
        background: side === "val" ? "#7c3aed" : side === "test" ? "#b45309" : side === "train" ? "#0f766e" : "rgba(15, 23, 42, 0.6)",
        color: "#fff",
      }}
    >
      {side ? SIDE_NAMES[side] : "not split yet"}
    </span>
  );
}

function Grid({ project, view, query, refresh, uploadOpen }) {
  const base = viewBase(project.id, view.id);
  const page = Number(query.page || 1);
  const filters = { concept: query.concept, status: query.status, split: query.split };
  const images = useAsync(
    () =>
      get(`/projects/${project.id}/images`, {
        view_id: view.id,
        concept_id: filters.concept,
        unannotated: filters.status === "unannotated" ? true : filters.status === "annotated" ? false : undefined,
        split: filters.split,
        offset: (page - 1) * PAGE_SIZE,
        limit: PAGE_SIZE,
      }),
    [project.id, view.id, page, filters.concept, filters.status, filters.split, refresh],
  );
  const setFilter = (k, v) => navigate(`${base}/images`, { ...query, [k]: v, page: undefined });
  const items = images.data ? images.data.items : null;
  const total = images.data ? images.data.total : null;
  const pages = total != null ? Math.max(1, Math.ceil(total / PAGE_SIZE)) : null;

  return (
    <section>
      <div class="stats" data-testid="view-stats">
        <div class="stat">
          <b>{view.images}</b>
          <span>images in the project</span>
        </div>
        <div class="stat">
          <b>{view.annotated}</b>
          <span>annotated in this view</span>
        </div>
        {view.concepts.map((c) => (
          <a class="stat" key={c.id} href={href(`${base}/images`, { concept: c.id })} style={{ color: "inherit" }}>
            <b>{c.image_count}</b>
            <span>{c.name}</span>
          </a>
        ))}
      </div>
      <div class="filters" data-testid="image-filters">
        <select aria-label="concept" value={filters.concept || ""} onChange={(e) => setFilter("concept", e.currentTarget.value)}>
          <option value="">All concepts</option>
          {view.concepts.map((c) => (
            <option value={c.id} key={c.id}>
              {c.name}
            </option>
          ))}
        </select>
        <select aria-label="annotation status" value={filters.status || ""} onChange={(e) => setFilter("status", e.currentTarget.value)}>
          <option value="">Annotated or not</option>
          <option value="annotated">Annotated</option>
          <option value="unannotated">Not annotated</option>
        </select>
        <select aria-label="split" value={filters.split || ""} onChange={(e) => setFilter("split", e.currentTarget.value)}>
          <option value="">Any side (training or validation)</option>
          <option value="train">Fixed to training</option>
          <option value="val">Fixed to validation</option>
        </select>
        {total != null && <span class="muted">{total} image(s)</span>}
        {Object.values(filters).some(Boolean) && (
          <a class="btn small" href={href(`${base}/images`)} data-testid="clear-filters">
            Clear filters
          </a>
        )}
        <span style={{ flex: 1 }} />
        <a class="btn" href={href(`${base}/annotate`, { status: "unannotated" })}>
          Annotate unannotated images
        </a>
      </div>
      <ErrorNote error={images.error} onRetry={images.reload} />
      {images.loading && !items ? (
        <Spinner label="Loading images…" />
      ) : items && items.length === 0 ? (
        <Empty title={Object.values(filters).some(Boolean) ? "No image matches these filters" : "No images yet"}>
          {Object.values(filters).some(Boolean)
            ? "Change the filters above."
            : uploadOpen
              ? "Drop images or a zip of images in the area above to start, or import an annotated archive."
              : "Start with “Upload images” or “Import annotated archive” at the top right."}
        </Empty>
      ) : (
        <div class="thumbs" data-testid="thumbs">
          {(items || []).map((img) => (
            <a class="thumb" href={`#${base}/images/${img.id}`} key={img.id} data-testid="thumb">
              <div class="frame" style={{ position: "relative" }}>
                <ProjectImage projectId={project.id} imageId={img.id} alt={img.original_name} loading="lazy" thumbnail />
                {img.annotation && (img.annotation.annotated || img.side) && <SideBadge side={img.side} />}
              </div>
              <div class="caption">
                <span title={img.original_name}>{img.original_name}</span>
                <span class="labels">{labelsOf(img, view.kind)}</span>
              </div>
            </a>
          ))}
        </div>
      )}
      {pages > 1 && (
        <div class="pager">
          <a class="btn small" href={href(`${base}/images`, { ...query, page: page - 1 })} aria-disabled={page <= 1} style={page <= 1 ? { visibility: "hidden" } : {}}>
            ← Previous
          </a>
          page {page} of {pages}
          <a class="btn small" href={href(`${base}/images`, { ...query, page: page + 1 })} style={page >= pages ? { visibility: "hidden" } : {}}>
            Next →
          </a>
        </div>
      )}
    </section>
  );
}

// A project without images opens on the upload area: the first thing to do is to drop some.
const openPanel = (chosen, view) => (chosen === undefined ? (view.images === 0 ? "upload" : null) : chosen);

export function ImagesPage({ projectId, viewId, query }) {
  const [chosenPanel, setPanel] = useState(undefined); // undefined: none chosen yet
  const [refresh, setRefresh] = useState(0); // bumped after an upload or import: the grid reloads
  const reloadGrid = () => setRefresh((n) => n + 1);
  return (
    <ViewFrame
      projectId={projectId}
      viewId={viewId}
      tab="images"
      title="Images"
      actions={(project, view) => {
        const panel = openPanel(chosenPanel, view);
        // Opened for an empty project: the button keeps it open (a click on "Upload images" never hides it).
        return (
        <>
          <button class={`btn ${panel === "upload" ? "active" : "primary"}`} onClick={() => setPanel(panel === "upload" && chosenPanel !== undefined ? null : "upload")}>
            Upload images
          </button>
          <button class={`btn ${panel === "import" ? "active" : ""}`} onClick={() => setPanel(panel === "import" ? null : "import")}>
            Import annotated archive
          </button>
          <button class={`btn ${panel === "export" ? "active" : ""}`} onClick={() => setPanel(panel === "export" ? null : "export")} data-testid="export-open">
            Export annotations
          </button>
        </>
        );
      }}
    >
      {(project, view, reloadView) => {
        const panel = openPanel(chosenPanel, view);
        return (
        <>
          {panel === "upload" && (
            <div class="card" style={{ marginBottom: "1rem" }}>
              <ImageUpload projectId={project.id} onDone={() => (setPanel("upload"), reloadView(), reloadGrid())} />
            </div>
          )}
          {panel === "import" && (
            <div class="card" style={{ marginBottom: "1rem" }}>
              <ArchiveImport
                viewId={view.id}
                onDone={() => {
                  reloadView();
                  reloadGrid();
                }}
              />
            </div>
          )}
          {panel === "export" && (
            <div class="card" style={{ marginBottom: "1rem" }}>
              <AnnotationExport view={view} />
            </div>
          )}
          <Grid project={project} view={view} query={query} refresh={refresh} uploadOpen={panel === "upload"} />
        </>
        );
      }}
    </ViewFrame>
  );
}
