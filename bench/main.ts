/**
 * Benchmark dispatcher: `npm run bench -- <name> [args...]` runs bench/<name>.ts, whose default
 * export is `(args: string[]) => Promise<void>`. Each benchmark prints JSON lines
 * `{"bench": name, "case": ..., ...figures}` on stdout.
 */
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "main.ts")
  .map((f) => f.slice(0, -3))
  .sort();

const [name, ...args] = process.argv.slice(2);
if (name === undefined || !available.includes(name)) {
  process.stderr.write(
    `usage: npm run bench -- <name> [args]\n` +
      (name === undefined ? "" : `unknown benchmark "${name}". `) +
      `available: ${available.join(", ")}\n`,
  );
  process.exit(2);
}
const mod = (await import(pathToFileURL(join(here, `${name}.ts`)).href)) as {
  default: (args: string[]) => Promise<void>;
};
await mod.default(args);
