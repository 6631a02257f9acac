// A version's training events from the API (stored rows carry the engine's event in `data`).
import { get } from "../api.js";

export const toEvent = (row) => ({ ...row.data, type: row.kind, _id: row.id });

// Events after the row id given (all of them when it is 0).
export async function fetchEvents(versionId, afterId = 0) {
  const rows = await get(`/versions/${versionId}/metrics`, { after_id: afterId || undefined });
  return rows.map(toEvent);
}

export const fetchAllEvents = (versionId) => fetchEvents(versionId, 0);
