/**
 * Which SQLite the store runs on. Nexus builds better-sqlite3 from its own sources with SQLite's
 * progress callbacks compiled in and the step budget added (native/sqlite/step-budget.c, built
 * by scripts/build-sqlite.mjs on install) and loads it through better-sqlite3's `nativeBinding`
 * option. Every connection of the process to a store's files must come from the same build: two
 * copies of SQLite in one process do not see each other's POSIX locks and can corrupt a database
 * (sqlite.org/howtocorrupt.html §2.2), so all of them open through openSqliteDatabase().
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";

/** Where scripts/build-sqlite.mjs leaves the build, relative to the package root. */
const BUILT = "native/sqlite/build/better_sqlite3.node";

/**
 * The built binding's path, or undefined if it was not built. This file is
 * src/store/sqlite/sqlite-binding.ts, or dist/src/store/sqlite/sqlite-binding.js once compiled.
 */
function findBinding(): string | undefined {
  for (const up of ["../../../", "../../../../"]) {
    const path = fileURLToPath(new URL(up + BUILT, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** The path of the SQLite build with the step budget, or undefined when it is not built. */
export const STEP_BUDGET_BINDING: string | undefined = findBinding();

/** Why the step budget is unavailable, for the error that refuses to start without it. */
export const STEP_BUDGET_MISSING =
  `the SQLite build with the apply step budget (${BUILT}) is missing: it is built on install by ` +
  "`node scripts/build-sqlite.mjs` (a C/C++ compiler, make and Python are needed; run it in the " +
  "package folder). Or start with -apply-step-budget 0, which is unsafe: one statement that never " +
  "ends would stop every replica";

/**
 * Opens a connection with the build that has the step budget when there is one, else with
 * better-sqlite3's own (then the step budget and the load deadline are unavailable).
 */
export function openSqliteDatabase(
  path: string,
  options: Database.Options = {},
): Database.Database {
  return new Database(
    path,
    STEP_BUDGET_BINDING === undefined
      ? options
      : { ...options, nativeBinding: STEP_BUDGET_BINDING },
  );
}
