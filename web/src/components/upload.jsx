// Drag-and-drop upload of many images or a zip, with progress and the list of rejected files.
import { useRef, useState } from "preact/hooks";
import { upload } from "../api.js";

const FORMATS = [
  ["auto", "Detect the format"],
  ["imagefolder", "ImageFolder (a folder per concept)"],
  ["csv", "CSV (path,label)"],
  ["coco", "COCO JSON"],
  ["yolo", "YOLO"],
  ["voc", "Pascal VOC XML"],
];

function Dropzone({ label, hint, accept, multiple, onFiles, testId }) {
  const input = useRef(null);
  const [over, setOver] = useState(false);
  return (
    <div
      class={`dropzone ${over ? "over" : ""}`}
      onClick={() => input.current.click()}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        if (e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
      }}
      data-testid={testId}
    >
      <strong>{label}</strong>
      <div>{hint}</div>
      <input
        ref={input}
        type="file"
        accept={accept}
        multiple={multiple}
        hidden
        onChange={(e) => {
          if (e.currentTarget.files.length) onFiles([...e.currentTarget.files]);
          e.currentTarget.value = "";
        }}
      />
    </div>
  );
}

function Outcome({ state }) {
  if (!state) return null;
  const { progress, result, error, count } = state;
  return (
    <div class="upload-outcome" data-testid="upload-outcome" aria-live="polite">
      {!result && !error && (
        <>
          <div class="progress" role="progressbar" aria-valuenow={Math.round(progress * 100)} aria-valuemin="0" aria-valuemax="100">
            <div style={{ width: `${progress * 100}%` }} />
          </div>
          <p class="help">
            {progress < 1 ? `Uploading ${count} file(s)… ${Math.round(progress * 100)}%` : "Checking the images on the server…"}
          </p>
        </>
      )}
      {error && <p class="field-error">{error.message}</p>}
      {result && (
        <div class={`notice ${result.rejected && result.rejected.length ? "warn" : ""}`}>
          <b>{summary(result)}</b>
          {result.rejected && result.rejected.length > 0 && (
            <ul class="rejected" data-testid="rejected-files">
              {result.rejected.map((r, i) => (
                <li key={i}>
                  <b>{r.name || r.path || r.file}</b>: {r.reason}
                </li>
              ))}
            </ul>
          )}
          {result.warnings && result.warnings.length > 0 && (
            <ul class="rejected">
              {result.warnings.map((w, i) => (
                <li key={i}>{w}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}

function summary(r) {
  const parts = [];
  const added = r.added ?? r.created ?? (r.images ? r.images.length : null);
  if (added != null) parts.push(`${added} image(s) added`);
  if (r.duplicates) parts.push(`${r.duplicates} already in the project`);
  if (r.annotated != null) parts.push(`${r.annotated} annotated`);
  if (r.rejected && r.rejected.length) parts.push(`${r.rejected.length} rejected`);
  return parts.join(", ") || "Done.";
}

export function ImageUpload({ path, query, onDone }) {
  const [state, setState] = useState(null);
  async function send(files) {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    setState({ progress: 0, count: files.length });
    try {
      const result = await upload(path, form, (p) => setState((s) => ({ ...s, progress: p })), query);
      setState({ progress: 1, result, count: files.length });
      onDone && onDone(result);
    } catch (error) {
      setState({ progress: 1, error, count: files.length });
    }
  }
  return (
    <div>
      <Dropzone
        testId="image-dropzone"
        label="Drop images or a zip here"
        hint="or click to choose files: JPEG, PNG, WebP, BMP, GIF, TIFF, or a .zip of them"
        accept="image/*,.zip"
        multiple
        onFiles={send}
      />
      <Outcome state={state} />
    </div>
  );
}

export function ArchiveImport({ path, onDone }) {
  const [format, setFormat] = useState("auto");
  const [state, setState] = useState(null);
  async function send(files) {
    const form = new FormData();
    form.append("file", files[0], files[0].name);
    form.append("format", format);
    setState({ progress: 0, count: 1 });
    try {
      const result = await upload(path, form, (p) => setState((s) => ({ ...s, progress: p })));
      setState({ progress: 1, result, count: 1 });
      onDone && onDone(result);
    } catch (error) {
      setState({ progress: 1, error, count: 1 });
    }
  }
  return (
    <div>
      <div class="form-row" style={{ marginBottom: "0.6rem" }}>
        <div style={{ flex: 1 }}>
          <label for="import-format">Annotation format</label>
          <select id="import-format" value={format} onChange={(e) => setFormat(e.currentTarget.value)}>
            {FORMATS.map(([k, label]) => (
              <option value={k} key={k}>
                {label}
              </option>
            ))}
          </select>
        </div>
      </div>
      <Dropzone testId="archive-dropzone" label="Drop an annotated archive (.zip)" hint="images with their labels; concepts are created as needed" accept=".zip" onFiles={send} />
      <Outcome state={state} />
    </div>
  );
}
