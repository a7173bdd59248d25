/** Runs nodes as child processes (test/node/fixtures/node-main.ts) and talks to them. */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { join } from "node:path";

export interface Reply {
  ok: boolean;
  result?: unknown;
  code?: string;
  error?: string;
}

export class ChildNode {
  private proc: ChildProcess | undefined;
  private nextId = 1;
  private waiting = new Map<number, (r: Reply) => void>();
  constructor(
    readonly url: string,
    readonly clusterUrls: string[],
    readonly dataDir: string,
    readonly extra: Record<string, unknown> = {},
  ) {}

  /** The process id (for CPU accounting). */
  pid(): number {
    const p = this.proc?.pid;
    if (p === undefined) throw new Error("not running");
    return p;
  }

  get alive(): boolean {
    return this.proc !== undefined;
  }

  async start(): Promise<void> {
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "fixtures", "node-main.ts")],
      {
        env: {
          ...process.env,
          NEXUS_NODE: JSON.stringify({
            nodeUrl: this.url,
            clusterUrls: this.clusterUrls,
            dataDir: this.dataDir,
            ...this.extra,
          }),
        },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    this.proc = proc;
    const ready = new Promise<void>((resolve, reject) => {
      proc.once("exit", (code) =>
        reject(new Error(`node ${this.url} exited with ${code} before it was ready`)),
      );
      createInterface({ input: proc.stdout! }).on("line", (line) => {
        const msg = JSON.parse(line) as Reply & { id?: number; ready?: boolean };
        if (msg.ready === true) resolve();
        else if (msg.id !== undefined) {
          this.waiting.get(msg.id)?.(msg);
          this.waiting.delete(msg.id);
        }
      });
    });
    proc.on("exit", () => {
      if (this.proc === proc) this.proc = undefined;
      for (const w of this.waiting.values())
        w({ ok: false, code: "DEAD", error: "process exited" });
      this.waiting.clear();
    });
    await ready;
  }

  request(op: string, data?: string, consistency?: string): Promise<Reply> {
    const proc = this.proc;
    if (proc === undefined)
      return Promise.resolve({ ok: false, code: "DEAD", error: "not running" });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      proc.stdin!.write(JSON.stringify({ id, op, data, consistency }) + "\n");
    });
  }

  async status(): Promise<
    { role: string; term: number; leader: string; applied: number } | undefined
  > {
    const r = await this.request("status");
    return r.ok
      ? (r.result as { role: string; term: number; leader: string; applied: number })
      : undefined;
  }

  /** SIGKILL: no chance to flush anything. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGKILL");
    await exited;
  }

  /** Graceful stop (stdin closes, the node stops). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p === undefined) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.stdin!.end();
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}
