// One image: large, with its facts and its annotation in this view.
import { useState } from "preact/hooks";
import { del, get, imageSrc, put } from "../api.js";
import { href, navigate } from "../router.js";
import { BoxEditor } from "../components/box-editor.jsx";
import { loadAnnotation } from "../components/annotation.js";
import { ViewFrame, viewBase } from "../components/view-frame.jsx";
import { ErrorNote, Spinner, fmt, photoWidth, useAsync } from "../components/ui.jsx";

// Fix the image to the training or validation side (or let the validation split setting decide).
function SplitChoice({ viewId, imageId, split, onChanged }) {
  const [error, setError] = useState(null);
  async function change(value) {
    try {
      await put(`/views/${viewId}/split`, { image_ids: [imageId], split: value || null });
      setError(null);
      onChanged();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <>
      <select aria-label="training or validation" value={split || ""} onChange={(e) => change(e.currentTarget.value)}>
        <option value="">automatic (validation split setting)</option>
        <option value="train">always training</option>
        <option value="val">always validation</option>
      </select>
      {error && <p class="field-error">{error.message}</p>}
    </>
  );
}

function RemoveImage({ projectId, image, onRemoved }) {
  const [error, setError] = useState(null);
  async function remove() {
    if (!confirm(`Remove ${image.original_name} from the project, with its annotations in every view? Trained versions keep their copy.`)) return;
    try {
      await del(`/projects/${projectId}/images/${image.id}`);
      onRemoved();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <>
      <button class="btn small danger" onClick={remove}>
        Remove image
      </button>
      {error && <p class="field-error">{error.message}</p>}
    </>
  );
}

function Detail({ project, view, imageId }) {
  const base = viewBase(project.id, view.id);
  const data = useAsync(async () => {
    const [image, annotation] = await Promise.all([get(`/projects/${project.id}/images/${imageId}`), loadAnnotation(view.id, imageId)]);
    return { image, annotation };
  }, [imageId]);
  const src = imageSrc(project.id, imageId);
  if (data.error) return <ErrorNote error={data.error} onRetry={data.reload} />;
  if (!data.data) return <Spinner />;
  const { image, annotation } = data.data;
  const names = annotation.concepts;
  return (
    <div class="split-layout">
      <div class={`stage ${view.kind === "detection" ? "" : "photo-stage"}`}>
        {view.kind === "detection" ? (
          <BoxEditor src={src} width={image.width} height={image.height} boxes={annotation.boxes} concepts={view.concepts} selected={null} onSelect={() => {}} onChange={() => {}} readOnly />
        ) : (
          <img class="photo" src={src} alt={image.original_name} style={{ width: photoWidth(image.width, image.height) }} />
        )}
      </div>
      <aside class="card" data-testid="image-facts">
        <h3 style={{ wordBreak: "break-all" }}>{image.original_name}</h3>
        <table class="data">
          <tbody>
            <tr>
              <td>size</td>
              <td>
                {image.width} × {image.height} px · {(image.size_bytes / 1024).toFixed(0)} KB
              </td>
            </tr>
            <tr>
              <td>type</td>
              <td>{image.content_type}</td>
            </tr>
            <tr>
              <td>added</td>
              <td>{fmt.date(image.created_at)}</td>
            </tr>
            <tr>
              <td>annotation</td>
              <td>
                {!annotation.annotated
                  ? "not annotated"
                  : view.kind === "detection"
                    ? `${annotation.boxes.length} box(es)`
                    : names.join(", ") || "without concept"}
              </td>
            </tr>
            <tr>
              <td>side</td>
              <td>
                <SplitChoice viewId={view.id} imageId={image.id} split={annotation.split} onChanged={data.reload} />
              </td>
            </tr>
          </tbody>
        </table>
        <p>
          <a class="btn primary" href={href(`${base}/annotate`, { image: image.id })}>
            Annotate this image
          </a>
        </p>
        <div class="actions" style={{ justifyContent: "space-between" }}>
          <a href={`#${base}/images`}>← all images</a>
          <RemoveImage projectId={project.id} image={image} onRemoved={() => navigate(`${base}/images`)} />
        </div>
      </aside>
    </div>
  );
}

export function ImageDetailPage({ projectId, viewId, imageId }) {
  return (
    <ViewFrame projectId={projectId} viewId={viewId} tab="images" title="Image">
      {(project, view) => <Detail project={project} view={view} imageId={imageId} />}
    </ViewFrame>
  );
}
