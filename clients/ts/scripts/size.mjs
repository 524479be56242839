// The browser entry's weight as an app ships it: `dist/index.js` bundled with everything it
// imports, minified, then gzipped — checked against a budget, so growth is a decision rather
// than an accident. `node scripts/size.mjs [entry] [budget bytes]` (defaults: the main entry
// and BUDGET below); the React package runs it on its own entry with React and the client
// left out (they are its peers).
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

/** The main entry's budget, minified + gzip, in bytes (8 KiB). */
const BUDGET = 8 * 1024;

const [entry = "dist/index.js", budget = String(BUDGET), ...external] = process.argv.slice(2);
const result = await build({
  entryPoints: [entry],
  bundle: true,
  minify: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  write: false,
  external,
  logLevel: "warning",
});
const code = result.outputFiles[0].contents;
const gzipped = gzipSync(code, { level: 9 }).length;
const kb = (n) => `${n} B (${(n / 1024).toFixed(2)} KiB)`;
console.log(`${entry}: ${kb(code.length)} minified, ${kb(gzipped)} minified + gzip (budget ${kb(Number(budget))})`);
if (gzipped > Number(budget)) {
  console.error(`${entry} is over its budget: trim it, or raise the budget on purpose`);
  process.exit(1);
}
