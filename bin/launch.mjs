// Shared by the programs in bin/: runs a CLI module's main(argv) and exits with its status.
// In a checkout (src/ and tsx present) it runs the TypeScript sources through tsx, so what runs is
// always what is in src/; in an installed package it runs the compiled dist/.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

export async function launch(name) {
  const source = join(root, "src", "cli", `${name}.ts`);
  let mod;
  let tsx;
  if (existsSync(source)) {
    try {
      tsx = await import("tsx/esm/api");
    } catch {
      tsx = undefined;
    }
  }
  if (tsx !== undefined) {
    tsx.register();
    mod = await import(pathToFileURL(source).href);
  } else {
    const built = join(root, "dist", "src", "cli", `${name}.js`);
    if (!existsSync(built)) {
      process.stderr.write(`${name}: ${built} is missing; run npm run build\n`);
      process.exit(1);
    }
    mod = await import(pathToFileURL(built).href);
  }
  const code = await mod.main(process.argv.slice(2));
  // Exit now: an idle client connection or pending timer must not keep a finished command alive.
  process.exit(code);
}
