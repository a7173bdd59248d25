// Run by `npm pack` (prepack) and so by `npm publish`: refuses to pack a dist/ that is missing,
// incomplete or older than src/, so no tarball ever ships stale or missing compiled code.
// `npm publish` builds first (prepublishOnly); before `npm pack`, run `npm run build`.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const problems = [];
function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

if (!existsSync("dist/src")) {
  problems.push("dist/src is missing");
} else {
  const sources = walk("src", []).filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"));
  for (const src of sources) {
    const base = join("dist", src.replace(/\.ts$/, ""));
    for (const out of [`${base}.js`, `${base}.d.ts`]) {
      if (!existsSync(out)) problems.push(`${out} is missing`);
      else if (statSync(out).mtimeMs < statSync(src).mtimeMs)
        problems.push(`${out} is older than ${src}`);
    }
  }
  const known = new Set(sources.map((s) => join("dist", s.replace(/\.ts$/, ".js"))));
  for (const out of walk("dist/src", []).filter((f) => f.endsWith(".js"))) {
    if (!known.has(out)) problems.push(`${out} has no source in src/ (left by an older build)`);
  }
}
if (problems.length > 0) {
  const shown = problems.slice(0, 5).map((p) => `  ${p}`);
  if (problems.length > 5) shown.push(`  ... and ${problems.length - 5} more`);
  process.stderr.write(
    `dist/ does not match src/:\n${shown.join("\n")}\nrun npm run build, then pack again\n`,
  );
  process.exit(1);
}
