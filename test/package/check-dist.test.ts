/**
 * scripts/check-dist.mjs, run by `npm pack` (prepack): it refuses a dist/ that is missing, lacks a
 * compiled file, is older than its source, or holds output of a source that no longer exists.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const SCRIPT = resolve(import.meta.dirname, "../../scripts/check-dist.mjs");
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function project(files: Record<string, string>, old: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "nexus-check-dist-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const past = new Date(Date.now() - 3600_000);
  for (const name of old) utimesSync(join(dir, name), past, past);
  return dir;
}

const check = (cwd: string): { code: number | null; err: string } => {
  const r = spawnSync(process.execPath, [SCRIPT], { cwd, encoding: "utf8" });
  return { code: r.status, err: r.stderr };
};

const built = {
  "src/a.ts": "",
  "src/sub/b.ts": "",
  "dist/src/a.js": "",
  "dist/src/a.d.ts": "",
  "dist/src/sub/b.js": "",
  "dist/src/sub/b.d.ts": "",
};

describe("check-dist (prepack)", () => {
  for (const c of [
    { name: "a fresh build passes", files: built, old: ["src/a.ts", "src/sub/b.ts"], want: null },
    { name: "no dist/src", files: { "src/a.ts": "" }, old: [], want: /dist\/src is missing/ },
    {
      name: "a compiled file missing",
      files: { ...built, "src/c.ts": "" },
      old: [],
      want: /dist\/src\/c\.js is missing/,
    },
    {
      name: "a source newer than its output",
      files: built,
      old: ["dist/src/sub/b.js"],
      want: /dist\/src\/sub\/b\.js is older than src\/sub\/b\.ts/,
    },
    {
      name: "output of a deleted source",
      files: { ...built, "dist/src/gone.js": "" },
      old: [],
      want: /dist\/src\/gone\.js has no source/,
    },
  ]) {
    it(c.name, () => {
      const r = check(project(c.files, c.old));
      if (c.want === null) {
        assert.equal(r.code, 0, r.err);
      } else {
        assert.equal(r.code, 1);
        assert.match(r.err, c.want);
        assert.match(r.err, /run npm run build/);
      }
    });
  }
});
