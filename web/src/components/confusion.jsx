// Confusion matrix as a clickable heatmap: rows are true concepts, columns predicted; colour is the
// share of the row (so rare and common concepts read alike), the number is the count.

function cellColor(share, diagonal) {
  // diagonal: green scale (right answers); elsewhere: red scale (mistakes)
  const a = Math.min(1, share);
  return diagonal ? `rgba(22, 163, 74, ${0.08 + 0.85 * a})` : a === 0 ? "#f8fafc" : `rgba(220, 38, 38, ${0.12 + 0.8 * a})`;
}

// unit: what a count is (images; a detector's matrix counts boxes). blank: a label whose own cell means
// nothing (a detector's background: no box there, none predicted), shown empty.
export function ConfusionMatrix({ classes, matrix, selected, onSelect, unit = "image(s)", blank = null }) {
  return (
    <div style={{ overflowX: "auto" }}>
      <table class="confusion" data-testid="confusion-matrix">
        <thead>
          <tr>
            <th />
            <th class="axis" colSpan={classes.length}>
              predicted →
            </th>
          </tr>
          <tr>
            <th class="axis">true ↓</th>
            {classes.map((c) => (
              <th key={c} title={c}>
                {c}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => {
            const total = row.reduce((a, b) => a + b, 0);
            return (
              <tr key={classes[i]}>
                <th title={classes[i]} style={{ textAlign: "right" }}>
                  {classes[i]}
                </th>
                {row.map((count, j) => {
                  const share = total ? count / total : 0;
                  const isSel = selected && selected.true === classes[i] && selected.predicted === classes[j];
                  if (blank != null && classes[i] === blank && classes[j] === blank)
                    return (
                      <td key={j} class="blank" title="Not counted: no object there and none predicted" data-testid={`cell-${i}-${j}`}>
                        —
                      </td>
                    );
                  return (
                    <td key={j}>
                      <button
                        class={isSel ? "selected" : ""}
                        style={{ background: cellColor(share, i === j), color: share > 0.55 ? "#fff" : "#0f172a" }}
                        title={`${count} ${unit} of ${classes[i]} predicted as ${classes[j]} (${(share * 100).toFixed(1)}% of ${classes[i]})`}
                        onClick={() => onSelect({ true: classes[i], predicted: classes[j], count })}
                        data-testid={`cell-${i}-${j}`}
                      >
                        {count}
                      </button>
                    </td>
                  );
                })}
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

export function Probabilities({ probabilities, truth, predicted, limit = 5 }) {
  const rows = Object.entries(probabilities || {})
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit);
  return (
    <ul class="probs">
      {rows.map(([name, p]) => (
        <li key={name}>
          <span class={name === truth ? "true" : name === predicted ? "wrong" : ""} title={name}>
            {name}
          </span>
          <span class="bar">
            <div style={{ width: `${(p * 100).toFixed(1)}%` }} />
          </span>
          <span class="num">{(p * 100).toFixed(1)}%</span>
        </li>
      ))}
    </ul>
  );
}
