/**
 * Temporary folders for tests: each is made under the system's temporary directory and removed,
 * with everything in it, when the test file that made it ends (pass or fail).
 */
import { after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Makes a new folder named `<prefix><random>` and returns its path. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}
