// The training settings form, generated entirely from the settings JSON schema and its field groups.
// Nothing here names a setting: add a field to TrainingSettings and it appears, with its checks. The
// basic view shows the fields the schema marks `basic` (a `basic: "switch"` field as on/off: off is 0,
// on its default); every other field waits under a closed "Advanced", grouped as the schema groups them.
import { useEffect, useState } from "preact/hooks";
import { basicFields, describeField, isDefaultText, toText } from "./settings-schema.js";

export { basicFields, collect, describeField, initialTexts, parseField, toText } from "./settings-schema.js";

const showDefault = (f) => (f.default == null ? "empty" : f.kind === "boolean" ? (f.default ? "on" : "off") : String(toText(f, f.default)));
const words = (name) => name.replace(/_/g, " ");

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
            {words(o)}
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

function Field({ f, text, error, reason, onChange, extra }) {
  const isDefault = isDefaultText(f, text);
  return (
    <div class={`field ${error ? "invalid" : ""} ${isDefault ? "" : "changed"}`} data-field={f.name}>
      <label for={`setting-${f.name}`}>{words(f.name)}</label>
      <div class="control">
        <FieldInput f={f} text={text} invalid={!!error} onInput={(v) => onChange(f.name, v)} />
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
      {extra}
      {reason && <p class="reason">Suggested: {reason}</p>}
      {error && <p class="field-error">{error}</p>}
    </div>
  );
}

// A number field shown in the basic view as on/off: off is 0, on is its default (or the number set under Advanced).
function SwitchField({ f, group, text, onChange, reason }) {
  const on = String(text).trim() !== "" && Number(text) !== 0;
  const id = `setting-${f.name}-switch`;
  return (
    <div class="field" data-basic-switch={f.name}>
      <label for={id}>{group.toLowerCase()}</label>
      <div class="control">
        <label class="switch">
          <input type="checkbox" id={id} checked={on} onChange={(e) => onChange(f.name, e.currentTarget.checked ? toText(f, f.default || 1) : "0")} />
          <span>{on ? "on" : "off"}</span>
        </label>
      </div>
      <p class="help">
        On: {words(f.name)} {on ? text : toText(f, f.default || 1)}, set under Advanced › {group}. Off: {words(f.name)} 0, the original
        images only. <span class="default">{f.description}</span>
      </p>
      {reason && <p class="reason">Suggested: {reason}</p>}
    </div>
  );
}

/**
 * schema: TrainingSettings JSON schema; groups: {group: [field names]}; texts: {name: typed text};
 * errors: {name: message}; reasons: {name: why it was suggested}; onChange(name, text);
 * extras: {name: element shown under that field} (e.g. "find for me" beside the learning rate).
 */
export function SettingsForm({ schema, groups, texts, errors, reasons = {}, onChange, openGroups, extras = {} }) {
  const { basic, switches } = basicFields(schema, groups);
  const advancedGroups = Object.entries(groups)
    .map(([group, names]) => [group, names.filter((n) => !basic.includes(n) || switches.includes(n))])
    .filter(([, names]) => names.length);
  const advancedNames = advancedGroups.flatMap(([, names]) => names);
  // Groups open as the person leaves them; a group with a new problem or suggestion opens itself, and
  // "Advanced" opens itself for a problem in one of its fields (suggestions are listed above the form).
  const [opened, setOpened] = useState({});
  const [advancedOpen, setAdvancedOpen] = useState(false);
  const attention = advancedGroups
    .filter(([, names]) => names.some((n) => errors[n] || reasons[n]))
    .map(([g]) => g)
    .join("|");
  const advancedErrors = advancedNames.filter((n) => errors[n]).length;
  useEffect(() => {
    if (attention) setOpened((o) => ({ ...o, ...Object.fromEntries(attention.split("|").map((g) => [g, true])) }));
  }, [attention]);
  useEffect(() => {
    if (advancedErrors) setAdvancedOpen(true);
  }, [advancedErrors]);
  const groupOf = (name) => Object.keys(groups).find((g) => groups[g].includes(name));
  const changedAdvanced = advancedNames.filter((n) => !switches.includes(n) && !isDefaultText(describeField(schema, n), texts[n])).length;
  return (
    <div class="settings-form">
      <div class="group basic" data-testid="basic-settings">
        <div class="fields">
          {basic.map((n) => {
            const f = describeField(schema, n);
            return switches.includes(n) ? (
              <SwitchField key={n} f={f} group={groupOf(n)} text={texts[n]} onChange={onChange} reason={reasons[n]} />
            ) : (
              <Field key={n} f={f} text={texts[n]} error={errors[n]} reason={reasons[n]} onChange={onChange} extra={extras[n]} />
            );
          })}
        </div>
      </div>
      <details
        class={`advanced ${advancedErrors ? "has-errors" : ""}`}
        open={advancedOpen}
        data-testid="advanced-settings"
        onToggle={(e) => setAdvancedOpen(e.currentTarget.open)}
      >
        <summary>
          <span>Advanced</span>
          <span class="summary-note">
            {advancedNames.length} more settings: {advancedGroups.map(([g]) => g.toLowerCase()).join(", ")}
          </span>
          {changedAdvanced > 0 && <span class="pill">{changedAdvanced} changed</span>}
          {advancedErrors > 0 && <span class="pill error">{advancedErrors} to fix</span>}
        </summary>
        {advancedGroups.map(([group, names], gi) => {
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
                {fields.map((f) => (
                  <Field key={f.name} f={f} text={texts[f.name]} error={errors[f.name]} reason={reasons[f.name]} onChange={onChange} extra={extras[f.name]} />
                ))}
              </div>
            </details>
          );
        })}
      </details>
    </div>
  );
}
