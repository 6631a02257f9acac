// The settings JSON schema (GET /api/v1/settings/schema) read for a form: each field's widget kind,
// bounds and default; the text a person typed checked and turned into a value, or an error naming
// what is wrong. Pure functions, no view code: tested with node (web/tests/).

// Resolve a property to what a widget needs: kind (enum|boolean|integer|number|list|string|union), nullable, enum values.
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
    if (v.type === "array" && v.items && (v.items.type === "integer" || v.items.type === "number"))
      // A list of numbers (detection's anchor sizes and ratios): typed as "32, 64, 128".
      return { ...base, kind: "list", item: { kind: v.items.type, ...bounds(v.items) }, minItems: v.minItems, maxItems: v.maxItems };
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
  if (f.kind === "list") return parseList(f, raw);
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

// "32, 64 128" -> [32, 64, 128]: numbers apart by commas, semicolons or spaces, each checked like a number field.
function parseList(f, raw) {
  const parts = raw.split(/[\s,;]+/).filter(Boolean);
  const whole = f.item.kind === "integer";
  const values = [];
  for (const [i, part] of parts.entries()) {
    const value = Number(part);
    const error = checkNumber(value, f.item, whole);
    if (error) return { error: `"${part}" (value ${i + 1}) ${error}` };
    values.push(value);
  }
  const what = whole ? "whole numbers" : "numbers";
  if (f.minItems != null && values.length < f.minItems) return { error: `give at least ${f.minItems} ${what}, apart by commas` };
  if (f.maxItems != null && values.length > f.maxItems) return { error: `give at most ${f.maxItems} ${what} (got ${values.length})` };
  return { value: values };
}

// Whether the typed text means the field's default ("32 64" is the list [32, 64] as much as "32, 64").
export function isDefaultText(f, text) {
  if (text === toText(f, f.default)) return true;
  const r = parseField(f, text);
  return !r.error && JSON.stringify(r.value) === JSON.stringify(f.default ?? null);
}

export function toText(f, value) {
  if (f.kind === "boolean") return !!value;
  if (f.kind === "list") return Array.isArray(value) ? value.join(", ") : value == null ? "" : String(value);
  return value == null ? "" : String(value);
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

// The fields of the form's basic view (the schema marks them `basic`): numbers to type first, then
// on/off switches, then choices, each kind in the groups' order; `switches`: those marked `basic: "switch"`,
// shown there as on/off over a number (off: 0, on: its default).
export function basicFields(schema, groups) {
  const marked = Object.values(groups).flat().filter((n) => schema.properties[n] && schema.properties[n].basic);
  const switches = marked.filter((n) => schema.properties[n].basic === "switch");
  const rank = (n) => {
    const kind = describeField(schema, n).kind;
    return switches.includes(n) || kind === "boolean" ? 1 : kind === "enum" ? 2 : 0;
  };
  const basic = marked.map((n, i) => [rank(n), i, n]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).map(([, , n]) => n);
  return { basic, switches };
}
