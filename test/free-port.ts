/**
 * Ports for the servers tests start (nodes in child processes, redis-server, mariadbd, ...).
 *
 * The usual trick, listen(0) then close, hands out a port from the kernel's ephemeral range, the
 * range every process's outgoing connections also draw from. Between that check and the server's
 * own bind, a client connection anywhere on the machine can take the port, and the server fails
 * to start ("gRPC port 45741 on 127.0.0.1 is in use" in CI, with many test files running at once).
 * So ports come from below the ephemeral range, which the kernel never hands out by itself: each
 * process walks that range from an offset derived from its pid (test files run in parallel
 * processes, and different offsets keep them apart), skips ports it already handed out, and keeps
 * a port only if it can bind it now.
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The lowest port handed out. */
const LOW = 20_000;

/** One past the highest: the start of the ephemeral range (Linux default 32768). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0],
    );
    if (Number.isSafeInteger(first) && first > LOW + 1000 && first <= 65_535) return first;
  } catch {
    // Not Linux: macOS and the BSDs start theirs at 49152.
  }
  return 32_768;
}

const HIGH = ephemeralStart();
const SPAN = HIGH - LOW;
const handedOut = new Set<number>();
let next = LOW + ((process.pid * 7919) % SPAN);

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that nothing listens on now and that this process has not handed out. */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < SPAN; tries++) {
    const port = next;
    next = next + 1 >= HIGH ? LOW : next + 1;
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port between ${LOW} and ${HIGH - 1} on 127.0.0.1`);
}
