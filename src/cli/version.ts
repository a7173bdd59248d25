/**
 * The package's version, which every program prints with `--version`: read once from the
 * package.json above this module (two folders up in a checkout's src/cli, three in an installed
 * package's dist/src/cli).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FlagSpec } from "./flags.js";

/** The `-version` flag of the programs that take flags. */
export const VERSION_FLAG: FlagSpec = {
  name: "version",
  kind: "bool",
  help: "print the version of nexus-raft and exit",
};

let cached: { readonly name: string; readonly version: string } | undefined;

/** The name and version in the nearest package.json above this module. */
export function packageInfo(): { readonly name: string; readonly version: string } {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
      if (typeof pkg.name !== "string" || typeof pkg.version !== "string") {
        throw new Error(`${file} has no name or version`);
      }
      cached = { name: pkg.name, version: pkg.version };
      return cached;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** What `--version` prints: `nexus-raft 0.1.0` and a newline. */
export function versionLine(): string {
  const { name, version } = packageInfo();
  return `${name} ${version}\n`;
}
