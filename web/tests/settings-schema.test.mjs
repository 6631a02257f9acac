// The settings form's logic on the real settings schema (written by tests/web/test_js_units.py from
// TrainingSettings, the same document GET /api/v1/settings/schema serves).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { basicFields, collect, describeField, initialTexts, parseField, toText } from "../src/components/settings-schema.js";

const path = process.env.VISIONTRAIN_SETTINGS_SCHEMA;
if (!path) throw new Error("set VISIONTRAIN_SETTINGS_SCHEMA to the schema JSON (pytest tests/web/test_js_units.py does)");
const { schema, groups, defaults } = JSON.parse(readFileSync(path, "utf8"));
const names = Object.values(groups).flat();

test("every setting gets a widget, and its default reads back as itself", () => {
  assert.deepEqual(new Set(names), new Set(Object.keys(schema.properties)));
  const { values, errors } = collect(schema, initialTexts(schema, groups));
  assert.deepEqual(errors, {});
  assert.deepEqual(values, defaults);
});

test("each kind of field is recognised from the schema", () => {
  const kinds = Object.fromEntries(names.map((n) => [n, describeField(schema, n).kind]));
  assert.equal(kinds.backbone, "enum");
  assert.equal(kinds.pretrained, "boolean");
  assert.equal(kinds.epochs, "integer");
  assert.equal(kinds.weight_decay, "number");
  assert.equal(kinds.learning_rate, "union"); // a number or "auto" (the range test picks it)
  assert.equal(kinds.weights_path, "string");
  assert.equal(kinds.devices, "union");
  assert.ok(describeField(schema, "image_size").nullable);
  assert.ok(describeField(schema, "backbone").options.includes("efficientnet_lite0"));
});

test("bounds, whole numbers and required values are checked with messages naming the limit", () => {
  const check = (name, text) => parseField(describeField(schema, name), text);
  assert.equal(check("dropout", "0.95").error, "must be at most 0.9");
  assert.equal(check("dropout", "0.9").value, 0.9);
  assert.equal(check("schedule_factor", "0").error, "must be more than 0");
  assert.equal(check("learning_rate", "0").error, 'must be a number (must be more than 0), or "auto"');
  assert.equal(check("learning_rate", "auto").value, "auto");
  assert.equal(check("learning_rate", "0.003").value, 0.003);
  assert.equal(check("validation_split", "1").error, "must be less than 1");
  assert.equal(check("epochs", "2.5").error, "must be a whole number");
  assert.equal(check("epochs", "").error, "a value is needed");
  assert.equal(check("epochs", "abc").error, "must be a number");
  assert.equal(check("image_size", "").value, null);
  assert.equal(check("image_size", "16").error, "must be at least 32");
  assert.equal(check("backbone", "vgg16").error.startsWith("choose one of efficientnet_lite0"), true);
});

test("a union takes either of its forms", () => {
  const devices = describeField(schema, "devices");
  assert.equal(parseField(devices, "auto").value, "auto");
  assert.equal(parseField(devices, "2").value, 2);
  assert.match(parseField(devices, "two").error, /"auto"/);
  assert.equal(toText(devices, "auto"), "auto");
});

test("the basic view is what the schema marks basic: numbers first, then switches, then choices", () => {
  const { basic, switches } = basicFields(schema, groups);
  assert.deepEqual(basic, ["learning_rate", "epochs", "augmented_copies", "fine_tune", "backbone"]);
  assert.deepEqual(switches, ["augmented_copies"]);
  const marked = Object.keys(schema.properties).filter((n) => schema.properties[n].basic);
  assert.deepEqual(new Set(basic), new Set(marked));
});
