/**
 * Crash points: named instants in the storage and runtime rooms (before and after an fsync, a
 * rename, an unlink; between a snapshot file and its WAL marker; ...) where a test may stop the
 * process as a crash or power loss would, to prove that whatever is on disk then still opens.
 *
 * A room that has points lists them in one exported constant (for example `WAL_CRASH_POINTS`), and
 * reaches each one with `hit(point)` on the hook it was given. With no hook the call is a property
 * test on `undefined`: nothing on the hot path when unused (etcd marks its equivalents with gofail
 * comments and compiles them out).
 *
 * Tests inject a hook directly (unit and power-loss tests), or start a real node with
 * `NEXUS_CRASH_POINT=<point>[:<nth>]`, read once by the program at startup, which kills the
 * process with SIGKILL the nth time that point is reached.
 */

/** Called at every crash point reached; a test's hook may throw, kill the process or record. */
export type CrashHook = (point: string) => void;

/** One crash point: its name (`room.what-when`, kebab-case) and what is true on disk there. */
export interface CrashPoint {
  readonly name: string;
  readonly doc: string;
}

/** What `NEXUS_CRASH_POINT` asks for: stop at the nth time `point` is reached (nth >= 1). */
export interface CrashSpec {
  readonly point: string;
  readonly nth: number;
}

/**
 * Parses `<point>[:<nth>]`. Throws a plain Error naming the problem (the spec comes from a test
 * harness, not a user: a typo must not silently disable the crash).
 */
export function parseCrashSpec(spec: string, known: readonly CrashPoint[]): CrashSpec {
  const m = /^([a-z0-9.-]+)(?::([1-9][0-9]*))?$/.exec(spec.trim());
  if (m === null || m[1] === undefined) {
    throw new Error(`crash point spec ${JSON.stringify(spec)} is not <point>[:<nth>]`);
  }
  const point = m[1];
  if (!known.some((p) => p.name === point)) {
    throw new Error(
      `unknown crash point ${JSON.stringify(point)}; known: ${known.map((p) => p.name).join(", ")}`,
    );
  }
  return { point, nth: m[2] === undefined ? 1 : Number(m[2]) };
}

/**
 * A hook that calls `stop` the nth time `spec.point` is reached (by default SIGKILL of this
 * process: no exit handlers, no flushing, as a crash).
 */
export function crashAt(
  spec: CrashSpec,
  stop: () => void = () => process.kill(process.pid, "SIGKILL"),
): CrashHook {
  let seen = 0;
  return (point) => {
    if (point !== spec.point) return;
    seen += 1;
    if (seen === spec.nth) stop();
  };
}
