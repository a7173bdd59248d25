/**
 * Hiding a secret given on the command line from the process list.
 */
import { readFileSync } from "node:fs";

/**
 * Replaces `secret` with `shown` in this process's command line as `ps` and /proc/<pid>/cmdline
 * show it (on Linux, setting process.title rewrites the memory they read). The secret stays
 * visible from the start of the process until this runs, and in the shell's history: this narrows
 * the window, it does not close it; a secret belongs in the environment or a file.
 */
export function hideInProcessTitle(secret: string, shown: string): void {
  if (secret === "" || secret === shown) return;
  let args: string[];
  try {
    args = readFileSync("/proc/self/cmdline", "utf8").split("\0");
    if (args.at(-1) === "") args.pop();
  } catch {
    args = [process.argv0, ...process.execArgv, ...process.argv.slice(1)];
  }
  if (!args.some((a) => a.includes(secret))) return;
  process.title = args.map((a) => a.split(secret).join(shown)).join(" ");
}
