// The training settings form, generated entirely from the settings JSON schema and its field groups.
// Nothing here names a setting: add a field to TrainingSettings and it appears, with its checks.
import { useEffect, useState } from "preact/hooks";
import { describeField, isDefaultText, toText } from "./settings-schema.js";

export { collect, describeField, initialTexts, parseField, toText } from "./settings-schema.js";

const showDefault = (f) => (f.default == null ? "empty" : f.kind === "boolean" ? (f.default ? "on" : "off") : String(toText(f, f.default)));

function FieldInput({ f, text, onInput, invalid }) {
  const id = `setting-${f.name}`;
  const common = { id, name: f.name, "aria-invalid": invalid ? "true" : "false", "aria-describedby": `${id}-help` };
  if (f.kind === "boolean")
    return (
      <label class="switch">
        <input type="checkbox" {...common} checked={!!text} onChange={(e) => onInput(e.currentTarget.checked)} />
        <span>{text ? "on" : "off"}</span>
      </label>
    );
  if (f.kind === "enum")
    return (
      <select {...common} value={text} onChange={(e) => onInput(e.currentTarget.value)}>
        {f.options.map((o) => (
          <option value={o} key={o}>
            {o.replace(/_/g, " ")}
          </option>
        ))}
      </select>
    );
  const numeric = f.kind === "integer" || f.kind === "number";
  const list = f.kind === "list";
  return (
    <input
      {...common}
      type="text"
      inputMode={numeric ? "decimal" : undefined}
      value={text}
      placeholder={f.nullable ? "empty: automatic" : list ? `${f.item.kind === "integer" ? "whole numbers" : "numbers"}, apart by commas` : ""}
      onInput={(e) => onInput(e.currentTarget.value)}
    />
  );
}

/**
 * schema: TrainingSettings JSON schema; groups: {group: [field names]}; texts: {name: typed text};
 * errors: {name: message}; reasons: {name: why it was suggested}; onChange(name, text).
 */
export function SettingsForm({ schema, groups, texts, errors, reasons = {}, onChange, openGroups }) {
  // Groups open as the person leaves them; a group with a new problem or suggestion opens itself.
  const [opened, setOpened] = useState({});
  const attention = Object.entries(groups)
    .filter(([, names]) => names.some((n) => errors[n] || reasons[n]))
    .map(([g]) => g)
    .join("|");
  useEffect(() => {
    if (attention) setOpened((o) => ({ ...o, ...Object.fromEntries(attention.split("|").map((g) => [g, true])) }));
  }, [attention]);
  return (
    <div class="settings-form">
      {Object.entries(groups).map(([group, names], gi) => {
        if (!names.length) return null;
        const fields = names.map((n) => describeField(schema, n));
        const changed = fields.filter((f) => !isDefaultText(f, texts[f.name])).length;
        const bad = fields.filter((f) => errors[f.name]).length;
        const open = opened[group] ?? (openGroups ? openGroups.includes(group) : gi < 4);
        return (
          <details
            class={`group ${bad ? "has-errors" : ""}`}
            open={open}
            key={group}
            onToggle={(e) => {
              const now = e.currentTarget.open;
              setOpened((o) => (o[group] === now ? o : { ...o, [group]: now }));
            }}
          >
            <summary>
              <span>{group}</span>
              {changed > 0 && <span class="pill">{changed} changed</span>}
              {bad > 0 && <span class="pill error">{bad} to fix</span>}
            </summary>
            <div class="fields">
              {fields.map((f) => {
                const text = texts[f.name];
                const isDefault = isDefaultText(f, text);
                return (
                  <div class={`field ${errors[f.name] ? "invalid" : ""} ${isDefault ? "" : "changed"}`} key={f.name} data-field={f.name}>
                    <label for={`setting-${f.name}`}>{f.name.replace(/_/g, " ")}</label>
                    <div class="control">
                      <FieldInput f={f} text={text} invalid={!!errors[f.name]} onInput={(v) => onChange(f.name, v)} />
                      {!isDefault && (
                        <button type="button" class="link" title="back to the default" onClick={() => onChange(f.name, toText(f, f.default))}>
                          reset
                        </button>
                      )}
                    </div>
                    <p class="help" id={`setting-${f.name}-help`}>
                      {f.description}
                      {f.kind === "list" ? ` Type ${f.item.kind === "integer" ? "whole numbers" : "numbers"} apart by commas.` : ""}{" "}
                      <span class="default">Default: {showDefault(f)}.</span>
                    </p>
                    {reasons[f.name] && <p class="reason">Suggested: {reasons[f.name]}</p>}
                    {errors[f.name] && <p class="field-error">{errors[f.name]}</p>}
                  </div>
                );
              })}
            </div>
          </details>
        );
      })}
    </div>
  );
}
