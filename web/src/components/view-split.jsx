// The view's validation split, on the training page: every version of every model on the view is
// judged on these same validation images. Re-splitting (another fraction or seed) is the only action
// that moves images between the sides; versions trained before keep the split they were judged on.
import { useState } from "preact/hooks";
import { get, post } from "../api.js";
import { ErrorNote, Spinner, useAsync } from "./ui.jsx";

export function ViewSplitCard({ view }) {
  const split = useAsync(() => get(`/views/${view.id}/split`), [view.id]);
  const [open, setOpen] = useState(false);
  const [fraction, setFraction] = useState("");
  const [seed, setSeed] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  if (split.error) return <ErrorNote error={split.error} onRetry={split.reload} />;
  if (!split.data) return <Spinner label="Loading the validation split…" />;
  const s = split.data;
  const share = s.images ? s.val / s.images : 0;

  async function resplit(e) {
    e.preventDefault();
    setError(null);
    const body = {};
    if (fraction.trim()) body.validation_split = Number(fraction) / 100;
    if (seed.trim()) body.seed = Number(seed);
    setBusy(true);
    try {
      const next = await post(`/views/${view.id}/split/resplit`, body);
      setDone(next);
      setOpen(false);
      split.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="card" style={{ marginBottom: "1rem" }} data-testid="view-split">
      <h3>Validation images</h3>
      <p style={{ margin: "0.2rem 0" }} data-testid="split-summary">
        <b>{s.val}</b> of {s.images} annotated images ({(share * 100).toFixed(0)}%) are for validation, <b>{s.train}</b> for training
        {s.fixed_validation_only
          ? ": you fixed the validation images yourself"
          : ` · the view's split: ${(s.validation_split * 100).toFixed(0)}% held out, seed ${s.seed}, split #${s.generation}`}
        {s.fixed_train + s.fixed_val > 0 ? ` · fixed by you: ${s.fixed_train} training, ${s.fixed_val} validation` : ""}
      </p>
      <p class="help">
        {s.made
          ? "Every version of every model on this view is judged on these validation images, so their metrics compare; new images join a side without moving the others."
          : "Made when the first version trains (with its validation split and seed); after that every version is judged on the same validation images."}
      </p>
      {s.warnings.length > 0 && (
        <div class="notice warn" data-testid="split-warnings">
          {s.warnings.slice(0, 3).map((w, i) => (
            <div key={i}>{w}</div>
          ))}
          {s.warnings.length > 3 && (
            <details>
              <summary>{s.warnings.length - 3} more concept(s) not on both sides</summary>
              {s.warnings.slice(3).map((w, i) => (
                <div key={i}>{w}</div>
              ))}
            </details>
          )}
          <div class="help">A concept seen on one image only is kept for training; such concepts are not validated.</div>
        </div>
      )}
      {done && (
        <div class="notice" data-testid="resplit-done">
          Re-split: split #{done.generation}, {done.val} validation and {done.train} training images. Versions trained from now on are judged on the new
          validation images.
        </div>
      )}
      {!open ? (
        <button type="button" class="btn small" onClick={() => setOpen(true)} data-testid="resplit-open">
          Re-split…
        </button>
      ) : (
        <div class="form-row" style={{ alignItems: "flex-end" }} data-testid="resplit-form">
          <div>
            <label for="resplit-fraction">Validation share (%)</label>
            <input id="resplit-fraction" type="text" inputmode="decimal" placeholder={String(Math.round(s.validation_split * 100))} value={fraction} onInput={(e) => setFraction(e.currentTarget.value)} />
          </div>
          <div>
            <label for="resplit-seed">Seed</label>
            <input id="resplit-seed" type="text" inputmode="numeric" placeholder={String(s.seed)} value={seed} onInput={(e) => setSeed(e.currentTarget.value)} />
          </div>
          <button type="button" class="btn danger" disabled={busy} onClick={resplit} data-testid="resplit">
            {busy ? "Re-splitting…" : "Re-split the view"}
          </button>
          <button type="button" class="btn" onClick={() => setOpen(false)}>
            Keep this split
          </button>
          <p class="help" style={{ flexBasis: "100%" }}>
            Moves images between training and validation: versions trained after it are not judged on the same images as those before.
          </p>
        </div>
      )}
      <ErrorNote error={error} />
    </div>
  );
}
