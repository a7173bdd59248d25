/**
 * Server processes a benchmark starts: spawned with their output kept, killed when the benchmark
 * stops them or when the benchmark process exits (even on an error or Ctrl-C).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";

const live = new Set<ChildProcess>();
let hooked = false;

function killAllOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.once("exit", () => {
    for (const p of live) p.kill("SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      for (const p of live) p.kill("SIGKILL");
      process.exit(130);
    });
  }
}

/** One started server process. */
export class ServerProcess {
  output = "";
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    proc.stdout?.on("data", (b: Buffer) => (this.output += b.toString()));
    proc.stderr?.on("data", (b: Buffer) => (this.output += b.toString()));
    this.exited = new Promise((res) => proc.once("exit", (code) => res(code)));
    void this.exited.then(() => live.delete(proc));
  }

  /**
   * Spawns `command args` and resolves once `ready` is true of its output so far (or at once
   * without `ready`); rejects with the output when it exits first or takes over 30 s.
   */
  static async start(
    name: string,
    command: string,
    args: readonly string[],
    opts: { ready?: (output: string) => boolean; env?: NodeJS.ProcessEnv } = {},
  ): Promise<ServerProcess> {
    killAllOnExit();
    const proc = spawn(command, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    live.add(proc);
    const s = new ServerProcess(name, proc);
    await new Promise<void>((resolve, reject) => {
      proc.once("error", reject);
      const ready = opts.ready;
      if (ready === undefined) {
        proc.once("spawn", resolve);
        return;
      }
      const timer = setTimeout(() => {
        reject(new Error(`${name} did not start in 30 s; its output:\n${s.output}`));
      }, 30_000);
      const check = (): void => {
        if (ready(s.output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout?.on("data", check);
      proc.stderr?.on("data", check);
      void s.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with ${String(code)}; its output:\n${s.output}`));
      });
    });
    return s;
  }

  get pid(): number {
    const pid = this.proc.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid`);
    return pid;
  }

  /** Sends `signal` and resolves once the process has exited. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    this.proc.kill(signal);
    await this.exited;
    clearTimeout(timer);
  }
}
