// Reading and saving one image's annotation in a view. Concepts are named (the API speaks names):
// classification sends `concept`, tagging `concepts`, detection `boxes` [{concept, x_min, y_min, x_max, y_max}].
import { get, put } from "../api.js";

export const annotationPath = (viewId, imageId) => `/views/${viewId}/annotations/${imageId}`;

// -> { annotated, split, concepts: [names], boxes: [{concept, x_min, y_min, x_max, y_max}] }
export function normalize(a) {
  return {
    annotated: !!a.annotated,
    split: a.split || null,
    concepts: [...(a.concepts || [])],
    boxes: (a.boxes || []).map((b) => ({ concept: b.concept, x_min: b.x_min, y_min: b.y_min, x_max: b.x_max, y_max: b.y_max })),
  };
}

export async function loadAnnotation(viewId, imageId) {
  return normalize(await get(annotationPath(viewId, imageId)));
}

const round = (v) => Math.round(v * 10) / 10;

export function annotationBody(kind, state) {
  if (kind === "classification") return { concept: state.concepts[0] };
  if (kind === "tagging") return { concepts: state.concepts };
  return { boxes: state.boxes.map((b) => ({ concept: b.concept, x_min: round(b.x_min), y_min: round(b.y_min), x_max: round(b.x_max), y_max: round(b.y_max) })) };
}

export async function saveAnnotation(viewId, imageId, kind, state) {
  return normalize(await put(annotationPath(viewId, imageId), annotationBody(kind, state)));
}
