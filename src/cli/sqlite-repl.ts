/**
 * `sqlite_repl`: the service on the embedded SQLite store, with the original programs' flags plus
 * `-sqlitePath`.
 */
import { runServe } from "./serve.js";
import type { Io } from "./serve.js";
import { SQLITE } from "./stores.js";

export function main(argv: readonly string[]): Promise<number> {
  return runServe(argv, { name: "sqlite_repl", store: SQLITE }, stdio);
}

const stdio: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};
