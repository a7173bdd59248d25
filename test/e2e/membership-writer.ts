/**
 * A writer for the membership end-to-end tests: saves a numbered statement after another through
 * the gRPC client (src/api/client.ts), to the nodes `targets()` names in turn, and records every
 * save that was acknowledged. A save that failed or whose outcome is unknown is not counted (it
 * may or may not be applied; only acknowledged writes must never be lost).
 */
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";

export interface Writer {
  /** The numbers of the acknowledged saves, in order. */
  readonly acked: number[];
  /** How many saves failed (refused, unknown outcome, unreachable). */
  failed(): number;
  /** Stops after the save in flight; resolves with the acknowledged numbers. */
  stop(): Promise<number[]>;
}

/**
 * Starts writing `statement(i)` for i = 0, 1, ... through `targets()` (gRPC addresses), one at a
 * time, with `args` (e.g. db.index for Redis). Each call has a 10 s deadline.
 */
export function startWriter(
  targets: () => readonly string[],
  statement: (i: number) => string,
  args: Record<string, string> = {},
): Writer {
  const acked: number[] = [];
  const clients = new Map<string, NexusClient>();
  const enc = new TextEncoder();
  let failures = 0;
  let stopped = false;
  const loop = (async () => {
    for (let i = 0; !stopped; i++) {
      const addrs = targets();
      const addr = addrs[i % Math.max(1, addrs.length)];
      if (addr === undefined) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      let c = clients.get(addr);
      if (c === undefined) {
        c = createNexusClient(addr, { timeoutMs: 10_000 });
        clients.set(addr, c);
      }
      try {
        await c.save(enc.encode(statement(i)), args);
        acked.push(i);
      } catch {
        failures++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    acked,
    failed: () => failures,
    stop: async () => {
      stopped = true;
      await loop;
      for (const c of clients.values()) c.close();
      return acked;
    },
  };
}
