// A drop area for files that also opens the file picker on click (images, zips), shared by the
// upload and predict pages.
import { useRef, useState } from "preact/hooks";

export function Dropzone({ label, hint, accept, multiple, onFiles, testId, disabled }) {
  const input = useRef(null);
  const [over, setOver] = useState(false);
  return (
    <div
      class={`dropzone ${over ? "over" : ""}`}
      onClick={() => !disabled && input.current.click()}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        if (!disabled && e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
      }}
      data-testid={testId}
    >
      <strong>{label}</strong>
      <div>{hint}</div>
      <input
        ref={input}
        type="file"
        accept={accept}
        multiple={multiple}
        hidden
        data-testid={`${testId}-input`}
        onChange={(e) => {
          if (e.currentTarget.files.length) onFiles([...e.currentTarget.files]);
          e.currentTarget.value = "";
        }}
      />
    </div>
  );
}
