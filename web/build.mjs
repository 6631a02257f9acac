// Bundles the studio (web/src) into the Python package's static folder, where visiontrain.web serves it.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "src", "visiontrain", "web", "static", "dist");

await build({
  entryPoints: { app: path.join(here, "src", "main.jsx") },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  jsxImportSource: "preact",
  loader: { ".js": "jsx" },
  outdir,
  logLevel: "warning",
});
console.log(`studio built into ${path.relative(process.cwd(), outdir)}`);
