// Shared by the programs in bin/: runs a CLI module's main(argv) and exits with its status.
//
// Which code runs (docs/packaging.md):
// - In a git checkout of nexus-raft (a .git entry beside bin/): the TypeScript sources in src/,
//   through tsx (a devDependency), so what runs is always what is in src/, never a stale dist/.
// - Anywhere else, that is installed from npm or from a tarball (a package never contains .git):
//   the compiled dist/ only. tsx is never loaded there, even when the project has it.
// - NEXUS_RUN_FROM=dist or NEXUS_RUN_FROM=src overrides the rule, e.g. to run the built programs
//   in a checkout: npm run build && NEXUS_RUN_FROM=dist bin/nexus --help.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

function fail(name, message) {
  process.stderr.write(`${basename(process.argv[1] ?? name)}: ${message}\n`);
  process.exit(1);
}

/** "src" or "dist": where the program's code comes from (see the rule above). */
function runFrom(name) {
  const forced = process.env["NEXUS_RUN_FROM"];
  if (forced === "src" || forced === "dist") return forced;
  if (forced !== undefined && forced !== "") {
    fail(name, `NEXUS_RUN_FROM must be src or dist, got "${forced}"`);
  }
  return existsSync(join(root, ".git")) ? "src" : "dist";
}

export async function launch(name) {
  let mod;
  if (runFrom(name) === "src") {
    const source = join(root, "src", "cli", `${name}.ts`);
    if (!existsSync(source)) fail(name, `${source} is missing`);
    let tsx;
    try {
      tsx = await import("tsx/esm/api");
    } catch (err) {
      fail(
        name,
        `running from the TypeScript sources needs tsx, a devDependency: run npm ci ` +
          `(or npm run build, then NEXUS_RUN_FROM=dist) (${err.message})`,
      );
    }
    tsx.register();
    mod = await import(pathToFileURL(source).href);
  } else {
    const built = join(root, "dist", "src", "cli", `${name}.js`);
    if (!existsSync(built)) fail(name, `${built} is missing; run npm run build`);
    mod = await import(pathToFileURL(built).href);
  }
  const code = await mod.main(process.argv.slice(2));
  // Output to a pipe is written asynchronously: exiting at once would cut it (at 64 KiB).
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  // Exit now: an idle client connection or pending timer must not keep a finished command alive.
  process.exit(code);
}

/** Resolves once everything written to the stream so far is flushed (or the stream failed). */
function flushed(stream) {
  return new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    stream.once("error", resolve);
    stream.write("", () => resolve());
  });
}
