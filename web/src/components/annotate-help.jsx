// The annotate page's side pieces: the keyboard help for each kind of view, and adding a concept.
import { useState } from "preact/hooks";
import { post } from "../api.js";

export function Shortcuts({ kind }) {
  return (
    <div class="shortcuts card" data-testid="shortcuts">
      <h3>Keyboard</h3>
      {kind === "classification" && (
        <div>
          <kbd>1</kbd>–<kbd>9</kbd> pick the concept and go to the next image
        </div>
      )}
      {kind === "tagging" && (
        <>
          <div>
            <kbd>1</kbd>–<kbd>9</kbd> toggle a concept
          </div>
          <div>
            <kbd>0</kbd> without concept
          </div>
          <div>
            <kbd>Enter</kbd> save and next
          </div>
        </>
      )}
      {kind === "detection" && (
        <>
          <div>drag on the image to draw a box; drag a box to move it, its corners to resize</div>
          <div>
            <kbd>1</kbd>–<kbd>9</kbd> concept of the selected box (and of new boxes)
          </div>
          <div>
            <kbd>Delete</kbd> remove the selected box · <kbd>Esc</kbd> deselect
          </div>
          <div>
            <kbd>Enter</kbd> save and next
          </div>
        </>
      )}
      <div>
        <kbd>←</kbd> <kbd>→</kbd> previous / next image (changes are saved)
      </div>
    </div>
  );
}

export function AddConcept({ project, view, onAdded }) {
  const [name, setName] = useState("");
  const [error, setError] = useState(null);
  async function submit(e) {
    e.preventDefault();
    if (!name.trim()) return;
    try {
      await post(`/views/${view.id}/concepts`, { name: name.trim() });
      setName("");
      setError(null);
      onAdded();
    } catch (err) {
      setError(err);
    }
  }
  return (
    <form onSubmit={submit} class="form-row" style={{ marginTop: "0.6rem" }}>
      <div style={{ flex: 1 }}>
        <input type="text" aria-label="new concept" placeholder="new concept" value={name} onInput={(e) => setName(e.currentTarget.value)} />
      </div>
      <button class="btn small" type="submit">
        Add
      </button>
      {error && <p class="field-error">{error.message}</p>}
    </form>
  );
}
