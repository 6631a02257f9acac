// Reading and saving one image's annotation in a view (shapes shared by the annotate and detail pages).
import { get, put } from "../api.js";

export const annotationPath = (projectId, viewId, imageId) => `/projects/${projectId}/views/${viewId}/images/${imageId}/annotation`;

// -> { annotated, split, conceptIds: [], boxes: [{concept_id, x_min, y_min, x_max, y_max}] }
export async function loadAnnotation(projectId, viewId, imageId) {
  const a = await get(annotationPath(projectId, viewId, imageId));
  return normalize(a);
}

export function normalize(a) {
  return {
    annotated: !!a.annotated,
    split: a.split || null,
    conceptIds: (a.concepts || []).map((c) => (typeof c === "object" ? c.id : c)),
    boxes: (a.boxes || []).map((b) => ({ concept_id: b.concept_id, x_min: b.x_min, y_min: b.y_min, x_max: b.x_max, y_max: b.y_max })),
  };
}

export async function saveAnnotation(projectId, viewId, imageId, kind, state) {
  const body =
    kind === "detection"
      ? { boxes: state.boxes.map((b) => ({ ...b, x_min: +b.x_min.toFixed(1), y_min: +b.y_min.toFixed(1), x_max: +b.x_max.toFixed(1), y_max: +b.y_max.toFixed(1) })) }
      : { concept_ids: state.conceptIds };
  return normalize(await put(annotationPath(projectId, viewId, imageId), body));
}
