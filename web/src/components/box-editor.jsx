// Draw, move, resize and delete boxes on an image with the mouse. Coordinates are image pixels.
import { useEffect, useRef, useState } from "preact/hooks";
import { PALETTE } from "./chart.jsx";

const MIN_SIZE = 4; // image pixels: smaller drags are clicks, not boxes

export const conceptColor = (concepts, name) => {
  const i = concepts.findIndex((c) => c.name === name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
};

function clampBox(b, w, h) {
  const x1 = Math.max(0, Math.min(w, Math.min(b.x_min, b.x_max)));
  const x2 = Math.max(0, Math.min(w, Math.max(b.x_min, b.x_max)));
  const y1 = Math.max(0, Math.min(h, Math.min(b.y_min, b.y_max)));
  const y2 = Math.max(0, Math.min(h, Math.max(b.y_min, b.y_max)));
  return { ...b, x_min: x1, y_min: y1, x_max: x2, y_max: y2 };
}

/**
 * src: image URL; width/height: the image's pixel size; boxes: [{concept, x_min, y_min, x_max, y_max}];
 * concepts: [{name}] (for colours); drawConcept: concept name of new boxes; selected: index or null.
 * onChange(boxes) after each finished gesture; onSelect(index | null). readOnly: show only.
 */
export function BoxEditor({ src, width, height, boxes, concepts, drawConcept, selected, onChange, onSelect, readOnly = false, scores }) {
  const frame = useRef(null);
  const [scale, setScale] = useState(0); // screen pixels per image pixel; 0 until measured
  const [gesture, setGesture] = useState(null); // {mode: draw|move|resize, index, corner, start, origin, box}

  // Fit the image to its container (scaling small images up, so their boxes are easy to draw).
  useEffect(() => {
    const container = frame.current && frame.current.parentElement;
    if (!container) return undefined;
    const fit = () => {
      const style = getComputedStyle(container);
      const availableWidth = container.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      const availableHeight = Math.max(240, window.innerHeight - 220);
      setScale(Math.min(availableWidth / width, availableHeight / height));
    };
    const observer = new ResizeObserver(fit);
    observer.observe(container);
    window.addEventListener("resize", fit);
    fit();
    return () => {
      observer.disconnect();
      window.removeEventListener("resize", fit);
    };
  }, [width, height]);

  const toImage = (e) => {
    const r = frame.current.getBoundingClientRect();
    return { x: (e.clientX - r.left) / scale, y: (e.clientY - r.top) / scale };
  };

  function down(e, index = null, corner = null) {
    if (readOnly || e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    frame.current.setPointerCapture(e.pointerId);
    const p = toImage(e);
    if (index === null) {
      if (drawConcept == null) return;
      onSelect(null);
      setGesture({ mode: "draw", start: p, box: { concept: drawConcept, x_min: p.x, y_min: p.y, x_max: p.x, y_max: p.y } });
    } else {
      onSelect(index);
      setGesture({ mode: corner ? "resize" : "move", index, corner, start: p, origin: boxes[index], box: boxes[index] });
    }
  }

  function move(e) {
    if (!gesture) return;
    const p = toImage(e);
    const dx = p.x - gesture.start.x;
    const dy = p.y - gesture.start.y;
    let box;
    if (gesture.mode === "draw") box = { ...gesture.box, x_max: p.x, y_max: p.y };
    else if (gesture.mode === "move") {
      const o = gesture.origin;
      const bw = o.x_max - o.x_min;
      const bh = o.y_max - o.y_min;
      const x = Math.max(0, Math.min(width - bw, o.x_min + dx));
      const y = Math.max(0, Math.min(height - bh, o.y_min + dy));
      box = { ...o, x_min: x, y_min: y, x_max: x + bw, y_max: y + bh };
    } else {
      const o = { ...gesture.origin };
      if (gesture.corner.includes("w")) o.x_min += dx;
      if (gesture.corner.includes("e")) o.x_max += dx;
      if (gesture.corner.includes("n")) o.y_min += dy;
      if (gesture.corner.includes("s")) o.y_max += dy;
      box = o;
    }
    setGesture({ ...gesture, box });
  }

  function up() {
    if (!gesture) return;
    const box = clampBox(gesture.box, width, height);
    const big = box.x_max - box.x_min >= MIN_SIZE && box.y_max - box.y_min >= MIN_SIZE;
    if (gesture.mode === "draw") {
      if (big) {
        onChange([...boxes, box]);
        onSelect(boxes.length);
      }
    } else if (big && (box.x_min !== gesture.origin.x_min || box.y_min !== gesture.origin.y_min || box.x_max !== gesture.origin.x_max || box.y_max !== gesture.origin.y_max)) {
      onChange(boxes.map((b, i) => (i === gesture.index ? box : b)));
    }
    setGesture(null);
  }

  const shown = boxes.map((b, i) => (gesture && gesture.mode !== "draw" && gesture.index === i ? clampBox(gesture.box, width, height) : b));
  const drawing = gesture && gesture.mode === "draw" ? clampBox(gesture.box, width, height) : null;

  const boxStyle = (b) => ({
    left: `${b.x_min * scale}px`,
    top: `${b.y_min * scale}px`,
    width: `${(b.x_max - b.x_min) * scale}px`,
    height: `${(b.y_max - b.y_min) * scale}px`,
    borderColor: conceptColor(concepts, b.concept),
  });

  return (
    <div class="box-editor" ref={frame} onPointerDown={(e) => down(e)} onPointerMove={move} onPointerUp={up} onPointerCancel={up} data-testid="box-editor" style={readOnly ? { cursor: "default" } : undefined}>
      <img src={src} alt="image being annotated" draggable={false} style={scale ? { width: `${width * scale}px`, height: `${height * scale}px` } : { visibility: "hidden" }} />
      {shown.map((b, i) => (
        <div class={`box ${i === selected ? "selected" : ""} ${readOnly ? "pred" : ""}`} style={boxStyle(b)} key={i} data-testid="box" onPointerDown={(e) => down(e, i)}>
          <span class="tag" style={{ background: conceptColor(concepts, b.concept) }}>
            {b.concept}
            {scores && scores[i] != null ? ` ${(scores[i] * 100).toFixed(0)}%` : ""}
          </span>
          {!readOnly &&
            i === selected &&
            ["nw", "ne", "sw", "se"].map((c) => <span class={`handle ${c}`} key={c} onPointerDown={(e) => down(e, i, c)} />)}
        </div>
      ))}
      {drawing && <div class="box drawing" style={boxStyle(drawing)} />}
    </div>
  );
}
