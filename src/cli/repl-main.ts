/** `repl`: entry point of bin/repl (see repl.ts). */
import { runRepl } from "./repl.js";

export function main(argv: readonly string[]): Promise<number> {
  return runRepl(argv, {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
  });
}
