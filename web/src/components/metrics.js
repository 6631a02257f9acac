// A version's training events from the API, fetched incrementally while it trains.
import { get } from "../api.js";

// Stored metric rows carry the engine event in `data` (plus kind/stage/epoch/step/time columns).
export const toEvent = (row) => ({ type: row.kind || row.type, stage: row.stage, epoch: row.epoch, step: row.step, time: row.time, ...(row.data || {}), _id: row.id });

export async function fetchEvents(versionId, afterId) {
  const page = await get(`/versions/${versionId}/metrics`, { after: afterId });
  return (page.items || page).map(toEvent);
}

export async function fetchAllEvents(versionId) {
  return fetchEvents(versionId);
}
