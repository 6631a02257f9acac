// Boxes drawn over an image as SVG in the image's own pixels (the SVG's viewBox), so they stay on their
// objects at any displayed size. Used by the detection evaluation (true and predicted boxes) and predict.
import { useEffect, useState } from "preact/hooks";
import { get } from "../api.js";
import { BOX_KINDS } from "./detection.js";

/**
 * width/height: the image's size in pixels (the boxes' space); boxes: [{kind, box: [x1, y1, x2, y2], label}]
 * (kind: a key of BOX_KINDS); labels: write each box's label (off for small thumbnails); highlight: index.
 */
export function BoxOverlay({ width, height, boxes, labels = true, highlight = null }) {
  if (!width || !height) return null;
  const side = Math.max(width, height);
  const font = side * 0.028;
  const dash = `${side * 0.018} ${side * 0.011}`;
  return (
    <svg class="box-overlay" viewBox={`0 0 ${width} ${height}`} preserveAspectRatio="none" data-testid="box-overlay" aria-hidden="true">
      {boxes.map((b, i) => {
        const [x1, y1, x2, y2] = b.box;
        const style = BOX_KINDS[b.kind] || BOX_KINDS.predicted;
        const lit = highlight === i;
        const common = { x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1), fill: "none", "vector-effect": "non-scaling-stroke" };
        // A label on a tab of the box's colour above the box, or inside its top edge when the box
        // touches the image's top; its width estimated from the text (about 0.6 em a character).
        const tabH = font * 1.35;
        const tabY = y1 - tabH >= 0 ? y1 - tabH : y1;
        const tabW = b.label ? Math.min(Math.max(width - x1, 0), b.label.length * font * 0.62 + font * 0.8) : 0;
        return (
          <g key={i} data-kind={b.kind} class={lit ? "lit" : ""}>
            <rect {...common} stroke="#000" stroke-opacity="0.6" stroke-width={lit ? 6 : 4} />
            <rect {...common} stroke={style.colour} stroke-width={lit ? 4 : 2} stroke-dasharray={style.dashed ? dash : undefined} data-testid="box-rect" data-kind={b.kind} />
            {labels && b.label && (
              <>
                <rect x={x1} y={tabY} width={tabW} height={tabH} fill={style.colour} fill-opacity="0.92" />
                <text x={x1 + font * 0.25} y={tabY + font * 1.02} font-size={font} fill={style.ink || "#fff"} font-weight="600">
                  {b.label}
                </text>
              </>
            )}
          </g>
        );
      })}
    </svg>
  );
}

// An image (any src) with its boxes over it; the image keeps its proportions at the width it is given.
export function BoxedImage({ src, alt, width, height, boxes, labels, highlight, onLoad, ...rest }) {
  return (
    <div class="boxed-image" {...rest}>
      <img src={src} alt={alt} decoding="async" onLoad={onLoad} />
      <BoxOverlay width={width} height={height} boxes={boxes} labels={labels} highlight={highlight} />
    </div>
  );
}

// A project image's size in pixels (the report's boxes are in those), asked once per image.
const sizes = new Map();
export function useImageSize(projectId, imageId) {
  const key = `${projectId}/${imageId}`;
  const [size, setSize] = useState(() => (sizes.get(key) && sizes.get(key).value) || null);
  useEffect(() => {
    if (imageId == null) return undefined;
    let entry = sizes.get(key);
    if (!entry) {
      entry = { promise: get(`/projects/${projectId}/images/${imageId}`).then((img) => (entry.value = { width: img.width, height: img.height })) };
      entry.promise.catch(() => sizes.delete(key));
      sizes.set(key, entry);
    }
    let live = true;
    entry.promise.then((s) => live && setSize(s), () => live && setSize(null));
    return () => {
      live = false;
    };
  }, [key]);
  return size;
}
