/**
 * `npm run chaos -- [flags]` (see chaos-flags.ts or --help): the fault-injection suite.
 *
 * This process is the supervisor: it checks the prerequisites, removes what crashed earlier runs
 * left behind, chooses the seed, and re-executes itself under `unshare -n` (a private network
 * namespace for the runner, so the run's bridge and addresses never touch the machine's network).
 * When that child ends, however it ends (even SIGKILL), the supervisor deletes the namespaces and
 * processes it left, and exits with its status.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { CHAOS_USAGE, ChaosFlagError, parseChaosFlags } from "./chaos-flags.js";
import type { ChaosFlags } from "./chaos-flags.js";
import { cleanupStale } from "./netns.js";

const INNER_ENV = "NEXUS_CHAOS_INNER";

function fail(msg: string, code = 2): never {
  process.stderr.write(`chaos: ${msg}\n`);
  process.exit(code);
}

function flagsOrExit(): ChaosFlags {
  try {
    return parseChaosFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ChaosFlagError) fail(`${err.message}\n\n${CHAOS_USAGE}`);
    throw err;
  }
}

async function supervise(flags: ChaosFlags): Promise<number> {
  if (process.getuid?.() !== 0) {
    fail("needs root (network namespaces and nftables); run it as root, e.g. in CI or a container");
  }
  for (const tool of ["ip", "unshare", "nft"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
      fail(`needs ${tool} on the PATH (apt-get install -y iproute2 util-linux nftables)`);
    }
  }
  const stale = await cleanupStale();
  if (stale.length > 0)
    process.stdout.write(`chaos: removed what earlier runs left: ${stale.join(", ")}\n`);
  const seed = flags.seed ?? randomInt(0, 2 ** 31);
  const argv = [
    ...process.argv.slice(2).filter((_a, i, all) => !isSeedArg(all, i)),
    "--seed",
    String(seed),
  ];
  const child = spawn(
    "unshare",
    ["-n", "--", process.execPath, ...process.execArgv, fileURLToPath(import.meta.url), ...argv],
    { stdio: "inherit", env: { ...process.env, [INNER_ENV]: "1" } },
  );
  // Ctrl-C reaches the child too (same process group): it tears down and exits; wait for it.
  // A SIGTERM sent to the supervisor alone is passed on.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  const status = await new Promise<number>((resolve) =>
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0))),
    ),
  );
  if (child.pid !== undefined) {
    const left = await cleanupStale(child.pid);
    if (left.length > 0)
      process.stdout.write(`chaos: cleaned up after the run: ${left.join(", ")}\n`);
  }
  if (status !== 0)
    process.stdout.write(`chaos: FAILED (exit ${status}); replay with --seed ${seed}\n`);
  return status;
}

/** Whether argv[i] is a --seed flag or its value (the supervisor passes its own). */
function isSeedArg(argv: readonly string[], i: number): boolean {
  const a = argv[i]!;
  if (/^--?seed(=|$)/.test(a)) return true;
  return i > 0 && /^--?seed$/.test(argv[i - 1]!);
}

const flags = flagsOrExit();
if (flags.help) {
  process.stdout.write(CHAOS_USAGE);
  process.exit(0);
}
if (process.env[INNER_ENV] === "1") {
  const { runChaos } = await import("./run.js");
  process.on("uncaughtException", (err) => {
    process.stderr.write(`chaos: uncaught: ${err.stack ?? String(err)}\n`);
    process.exit(1);
  });
  process.exit(await runChaos({ ...flags, seed: flags.seed ?? 0 }));
} else {
  process.exit(await supervise(flags));
}
