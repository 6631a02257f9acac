// The training settings form, generated entirely from the settings JSON schema and its field groups.
// Nothing here names a setting: add a field to TrainingSettings and it appears, with its checks.
import { useEffect, useState } from "preact/hooks";

// Resolve a property to what a widget needs: kind (enum|boolean|integer|number|string|union), nullable, enum values.
export function describeField(schema, name) {
  const prop = schema.properties[name];
  const resolve = (p) => (p && p.$ref ? schema.$defs[p.$ref.split("/").pop()] : p);
  let variants = prop.anyOf ? prop.anyOf.map(resolve) : [resolve(prop.allOf ? prop.allOf[0] : prop)];
  const nullable = variants.some((v) => v.type === "null");
  variants = variants.filter((v) => v.type !== "null");
  const base = { name, title: prop.title || name, description: prop.description || "", default: prop.default, nullable };
  const bounds = (v) => ({
    minimum: v.minimum ?? prop.minimum,
    maximum: v.maximum ?? prop.maximum,
    exclusiveMinimum: v.exclusiveMinimum ?? prop.exclusiveMinimum,
    exclusiveMaximum: v.exclusiveMaximum ?? prop.exclusiveMaximum,
  });
  if (variants.length === 1) {
    const v = variants[0];
    if (v.enum) return { ...base, kind: "enum", options: v.enum };
    if (v.const !== undefined) return { ...base, kind: "enum", options: [v.const] };
    if (v.type === "boolean") return { ...base, kind: "boolean" };
    if (v.type === "integer" || v.type === "number") return { ...base, kind: v.type, ...bounds(v) };
    return { ...base, kind: "string" };
  }
  // A union such as int | "auto": typed as text; each variant is tried in turn.
  return { ...base, kind: "union", variants: variants.map((v) => ({ ...v, ...bounds(v) })) };
}

function checkNumber(value, f, integer) {
  if (typeof value !== "number" || Number.isNaN(value)) return "must be a number";
  if (integer && !Number.isInteger(value)) return "must be a whole number";
  if (f.minimum != null && value < f.minimum) return `must be at least ${f.minimum}`;
  if (f.maximum != null && value > f.maximum) return `must be at most ${f.maximum}`;
  if (f.exclusiveMinimum != null && value <= f.exclusiveMinimum) return `must be more than ${f.exclusiveMinimum}`;
  if (f.exclusiveMaximum != null && value >= f.exclusiveMaximum) return `must be less than ${f.exclusiveMaximum}`;
  return null;
}

// The text typed into a field -> the value sent, or an error naming what is wrong.
export function parseField(f, text) {
  if (f.kind === "boolean") return { value: !!text };
  if (f.kind === "enum") return f.options.includes(text) ? { value: text } : { error: `choose one of ${f.options.join(", ")}` };
  const raw = text == null ? "" : String(text).trim();
  if (raw === "") return f.nullable ? { value: null } : { error: "a value is needed" };
  if (f.kind === "integer" || f.kind === "number") {
    const value = Number(raw);
    const error = checkNumber(value, f, f.kind === "integer");
    return error ? { error } : { value };
  }
  if (f.kind === "union") {
    const errors = [];
    for (const v of f.variants) {
      if (v.const !== undefined || v.enum) {
        const options = v.enum || [v.const];
        if (options.includes(raw)) return { value: raw };
        errors.push(options.map((o) => `"${o}"`).join(" or "));
      } else if (v.type === "integer" || v.type === "number") {
        const value = Number(raw);
        const error = checkNumber(value, v, v.type === "integer");
        if (!error) return { value };
        errors.push(`a ${v.type === "integer" ? "whole " : ""}number (${error})`);
      } else if (v.type === "string") return { value: raw };
    }
    return { error: `must be ${errors.join(", or ")}` };
  }
  return { value: raw };
}

export function toText(f, value) {
  if (f.kind === "boolean") return !!value;
  return value == null ? "" : String(value);
}

const showDefault = (f) => (f.default == null ? "empty" : f.kind === "boolean" ? (f.default ? "on" : "off") : String(f.default));

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
  return (
    <input
      {...common}
      type="text"
      inputMode={numeric ? "decimal" : undefined}
      value={text}
      placeholder={f.nullable ? "empty: automatic" : ""}
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
        const changed = fields.filter((f) => texts[f.name] !== toText(f, f.default)).length;
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
                const isDefault = text === toText(f, f.default);
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
                      {f.description} <span class="default">Default: {showDefault(f)}.</span>
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

// Form state helpers: defaults -> texts; texts -> {values, errors}.
export function initialTexts(schema, groups, values = {}) {
  const texts = {};
  for (const names of Object.values(groups))
    for (const n of names) {
      const f = describeField(schema, n);
      texts[n] = toText(f, n in values ? values[n] : f.default);
    }
  return texts;
}

export function collect(schema, texts) {
  const values = {};
  const errors = {};
  for (const [name, text] of Object.entries(texts)) {
    const r = parseField(describeField(schema, name), text);
    if (r.error) errors[name] = r.error;
    else values[name] = r.value;
  }
  return { values, errors };
}
