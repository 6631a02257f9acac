// Drag-and-drop upload of many images or zips, with progress and the list of rejected files; and
// the import of an annotated archive into a view.
import { useState } from "preact/hooks";
import { get, upload } from "../api.js";
import { Dropzone } from "./dropzone.jsx";
import { useAsync } from "./ui.jsx";

// Images go one per request (a few at a time): the API takes a request all or nothing, so one bad
// file must not sink the others, and each refusal names its file.
const PARALLEL = 3;

function ProgressBar({ value, label }) {
  return (
    <>
      <div class="progress" role="progressbar" aria-valuenow={Math.round(value * 100)} aria-valuemin="0" aria-valuemax="100">
        <div style={{ width: `${value * 100}%` }} />
      </div>
      <p class="help">{label}</p>
    </>
  );
}

function Rejections({ rejected }) {
  if (!rejected.length) return null;
  return (
    <ul class="rejected" data-testid="rejected-files">
      {rejected.map((r, i) => (
        <li key={i}>
          <b>{r.name}</b>: {r.reason}
        </li>
      ))}
    </ul>
  );
}

// Files whose bytes were already stored, folded: each named with the image it repeats.
function Duplicates({ duplicates, where }) {
  if (!duplicates.length) return null;
  return (
    <details class="duplicates" data-testid="duplicate-files" style={{ marginTop: "0.4rem" }}>
      <summary>
        {duplicates.length} file(s) had the same bytes as an image already there, so they added no new image: which ones
      </summary>
      <ul class="rejected">
        {duplicates.map((d, i) => (
          <li key={i} data-testid="duplicate-file">
            <b>{d.name}</b> is the same as <b>{d.same_as}</b> {d.found_in === "upload" ? `(earlier in ${where})` : "(already in the project)"}
          </li>
        ))}
      </ul>
    </details>
  );
}

// A refused file's reason, without repeating its name (BadFile messages read "name: reason").
const reasonOf = (err, name) => (err.message.startsWith(`${name}: `) ? err.message.slice(name.length + 2) : err.message);

export function ImageUpload({ projectId, onDone }) {
  const [run, setRun] = useState(null); // {total, bytes, sent, done, created, duplicates, rejected, finished}

  async function send(files) {
    const totalBytes = files.reduce((a, f) => a + f.size, 0) || 1;
    const state = { total: files.length, done: 0, created: 0, duplicates: 0, duplicateFiles: [], rejected: [], finished: false, sentBytes: 0 };
    const inFlight = new Map(); // file -> bytes sent so far
    const publish = () => {
      const partial = [...inFlight.values()].reduce((a, b) => a + b, 0);
      setRun({ ...state, progress: Math.min(1, (state.sentBytes + partial) / totalBytes) });
    };
    publish();
    const queue = [...files];
    async function worker() {
      while (queue.length) {
        const file = queue.shift();
        const zip = /\.zip$/i.test(file.name);
        const form = new FormData();
        form.append(zip ? "file" : "files", file, file.name);
        inFlight.set(file, 0);
        try {
          const r = await upload(`/projects/${projectId}/images${zip ? "/archive" : ""}`, form, (p) => {
            inFlight.set(file, p * file.size);
            publish();
          });
          state.created += r.created;
          state.duplicates += r.duplicates;
          state.duplicateFiles.push(...(r.duplicate_files || []).map((d) => (zip ? { ...d, name: `${file.name} › ${d.name}`, same_as: d.found_in === "upload" ? `${file.name} › ${d.same_as}` : d.same_as } : d)));
          state.rejected.push(...r.rejected.map((x) => ({ name: zip ? `${file.name} › ${x.name}` : x.name, reason: x.reason })));
        } catch (err) {
          if (err.status === 401) throw err;
          state.rejected.push({ name: file.name, reason: reasonOf(err, file.name) });
        }
        inFlight.delete(file);
        state.sentBytes += file.size;
        state.done += 1;
        publish();
      }
    }
    try {
      await Promise.all(Array.from({ length: Math.min(PARALLEL, files.length) }, worker));
    } finally {
      state.finished = true;
      publish();
      onDone && onDone(state);
    }
  }

  return (
    <div>
      <Dropzone
        testId="image-dropzone"
        label="Drop images or zips of images here"
        hint="or click to choose files: JPEG, PNG, WebP, BMP, GIF, TIFF, or .zip archives of them"
        accept="image/*,.zip"
        multiple
        disabled={run && !run.finished}
        onFiles={send}
      />
      {run && (
        <div aria-live="polite" data-testid="upload-outcome">
          {!run.finished && <ProgressBar value={run.progress} label={`Uploading: ${run.done} of ${run.total} file(s) done, ${Math.round(run.progress * 100)}% of the bytes sent`} />}
          {run.finished && (
            <div class={`notice ${run.rejected.length ? "warn" : ""}`}>
              <b data-testid="upload-summary">
                {run.created} image(s) added
                {run.duplicates ? `, ${run.duplicates} already there (same bytes)` : ""}
                {run.rejected.length ? `, ${run.rejected.length} rejected:` : "."}
              </b>
              <Rejections rejected={run.rejected} />
              <Duplicates duplicates={run.duplicateFiles} where="the same zip" />
            </div>
          )}
        </div>
      )}
    </div>
  );
}

export function ArchiveImport({ viewId, onDone }) {
  const formats = useAsync(() => get(`/views/${viewId}/import/formats`), [viewId]);
  const [format, setFormat] = useState("");
  const [state, setState] = useState(null);
  async function send(files) {
    const file = files[0];
    const form = new FormData();
    form.append("file", file, file.name);
    if (format) form.append("format", format);
    setState({ progress: 0, name: file.name });
    try {
      const result = await upload(`/views/${viewId}/import`, form, (p) => setState((s) => ({ ...s, progress: p })));
      setState({ progress: 1, result, name: file.name });
      onDone && onDone(result);
    } catch (error) {
      setState({ progress: 1, error, name: file.name });
    }
  }
  const r = state && state.result;
  return (
    <div>
      <div class="form-row" style={{ marginBottom: "0.6rem" }}>
        <div style={{ flex: 1 }}>
          <label for="import-format">Annotation format</label>
          <select id="import-format" value={format} onChange={(e) => setFormat(e.currentTarget.value)}>
            <option value="">Detect from the archive's layout</option>
            {(formats.data || []).map((f) => (
              <option value={f.name} key={f.name}>
                {f.title}
              </option>
            ))}
          </select>
        </div>
      </div>
      <Dropzone
        testId="archive-dropzone"
        label="Drop an annotated archive (.zip)"
        hint="ImageFolder, CSV, COCO, YOLO or Pascal VOC: images with their labels; missing concepts are created"
        accept=".zip"
        onFiles={send}
        disabled={state && !state.result && !state.error}
      />
      {state && !r && !state.error && (
        <ProgressBar value={state.progress} label={state.progress < 1 ? `Uploading ${state.name}… ${Math.round(state.progress * 100)}%` : "Reading the archive on the server…"} />
      )}
      {state && state.error && <p class="field-error">{state.error.message}</p>}
      {r && (
        <div class={`notice ${r.rejected.length || r.warnings.length ? "warn" : ""}`} data-testid="import-outcome">
          <b>
            {r.format}: {r.images} image(s) read, {r.created} new
            {r.duplicates ? ` (${r.duplicates} the same bytes as an image already there)` : ""}, {r.annotated} annotated
            {r.concepts_created.length ? `; new concepts: ${r.concepts_created.join(", ")}` : ""}
          </b>
          <Rejections rejected={r.rejected} />
          <Duplicates duplicates={r.duplicate_files || []} where="the archive" />
          {r.warnings.length > 0 && (
            <ul class="rejected">
              {r.warnings.map((w, i) => (
                <li key={i}>{w}</li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
