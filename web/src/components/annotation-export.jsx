// "Export annotations": the view's annotated images and their annotations as a dataset zip, in a
// format the view can use (GET /views/{id}/export/formats: COCO, YOLO, Pascal VOC for detection; CSV
// for any view). The zip imports back the same, training/validation sides included.
import { useState } from "preact/hooks";
import { get, url } from "../api.js";
import { ErrorNote, Spinner, useAsync } from "./ui.jsx";

export function AnnotationExport({ view }) {
  const formats = useAsync(() => get(`/views/${view.id}/export/formats`), [view.id]);
  const [chosen, setChosen] = useState(null);
  if (formats.error) return <ErrorNote error={formats.error} onRetry={formats.reload} />;
  if (!formats.data) return <Spinner label="Loading the formats…" />;
  const list = formats.data;
  const name = chosen || (list[0] && list[0].name);
  const format = list.find((f) => f.name === name);
  const nothing = !view.annotated;
  return (
    <div data-testid="annotation-export">
      <h3>Export annotations</h3>
      <p class="help" style={{ marginTop: 0 }}>
        The {view.annotated} annotated image(s) of this view with their {view.kind === "detection" ? "boxes" : "concepts"}, as a zip. Each image keeps its side in the
        view's split (training or validation); images not annotated here are left out. Importing the zip into a view gives back the same annotations.
      </p>
      <div class="form-row">
        <div>
          <label for="export-format">Format</label>
          <select id="export-format" value={name} onChange={(e) => setChosen(e.currentTarget.value)}>
            {list.map((f) => (
              <option value={f.name} key={f.name}>
                {f.title}
              </option>
            ))}
          </select>
        </div>
        {/* A plain link: the browser streams the zip to disk (the token travels in the read-only cookie). */}
        <a
          class={`btn primary ${nothing ? "disabled" : ""}`}
          href={nothing ? undefined : url(`/views/${view.id}/export`, { format: name })}
          download
          aria-disabled={nothing ? "true" : undefined}
          data-testid="export-download"
        >
          Download {format ? format.title : ""} zip
        </a>
      </div>
      {format && (
        <p class="help" data-testid="export-layout">
          What the zip holds: {format.layout}
        </p>
      )}
      {nothing && <p class="field-error">Nothing is annotated in this view yet: annotate images first.</p>}
    </div>
  );
}
