/**
 * `npm run sim -- --seeds N [--from S] [--ticks T]` runs N seeds of the cluster simulation and
 * ends with `N passed, M failed`; `--seed S [--verbose]` replays one seed (with a trace).
 */
import { runSeed } from "./cluster-sim.js";

function usage(msg: string): never {
  process.stderr.write(
    `${msg}\nusage: npm run sim -- --seeds N [--from S] [--ticks T] | --seed S [--verbose] [--ticks T]\n`,
  );
  process.exit(2);
}

const args = process.argv.slice(2);
let seeds = 0;
let from = 1;
let single: number | undefined;
let ticks = 600;
let verbose = false;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const num = (): number => {
    const v = Number(args[++i]);
    if (!Number.isSafeInteger(v) || v < 0) usage(`${a} takes a non-negative integer`);
    return v;
  };
  if (a === "--seeds") seeds = num();
  else if (a === "--from") from = num();
  else if (a === "--seed") single = num();
  else if (a === "--ticks") ticks = num();
  else if (a === "--verbose") verbose = true;
  else usage(`unknown argument ${String(a)}`);
}

if (single !== undefined) {
  const { error, sim } = runSeed(single, ticks, verbose);
  if (verbose) process.stdout.write(sim.trace.join("\n") + "\n");
  process.stdout.write(`seed ${single}: ${JSON.stringify(sim.stats)}\n`);
  if (error !== undefined) {
    process.stdout.write(`seed ${single} FAILED: ${error}\n0 passed, 1 failed\n`);
    process.exit(1);
  }
  process.stdout.write("1 passed, 0 failed\n");
} else {
  if (seeds <= 0) usage("give --seeds N (N > 0) or --seed S");
  const failed: number[] = [];
  const start = Date.now();
  for (let s = from; s < from + seeds; s++) {
    const { error } = runSeed(s, ticks);
    if (error !== undefined) {
      failed.push(s);
      process.stdout.write(
        `seed ${s} FAILED: ${error}\n  replay: npm run sim -- --seed ${s} --verbose\n`,
      );
    }
    if ((s - from + 1) % 1000 === 0) {
      process.stderr.write(
        `... ${s - from + 1} seeds in ${((Date.now() - start) / 1000).toFixed(1)} s\n`,
      );
    }
  }
  if (failed.length > 0) process.stdout.write(`failing seeds: ${failed.join(" ")}\n`);
  process.stdout.write(`${seeds - failed.length} passed, ${failed.length} failed\n`);
  process.exit(failed.length > 0 ? 1 : 0);
}
