/**
 * A process hosting the WAN links that start at one node: run inside that node's network
 * namespace, it listens on every peer's advertised address and relays to the peer's real one
 * (see link-relay.ts). The harness changes the links while it runs through a Unix socket (the
 * file system is shared across network namespaces), one JSON request per line:
 *
 *   {"link": "10.78.0.2:7000", "out": {"delayMs": 40}, "back": {"jitterMs": 5}}
 *   {"link": "*", "stall": 500}
 *
 * Each request is answered with `{"ok":true}` or `{"error":"..."}`. The process prints `ready`
 * on stdout once every link listens.
 *
 *   tsx test/wan/relay-main.ts --control <socket> --seed <n>
 *       --link <listenHost>:<port>=<targetHost>:<port> [--link ...]
 */
import { createServer } from "node:net";
import { rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { SeededRng } from "../chaos/seeded-rng.js";
import { LinkRelay } from "./link-relay.js";
import { applyControl } from "./relay-control.js";
import type { RelayControl } from "./relay-control.js";

function hostPort(s: string, what: string): { host: string; port: number } {
  const m = /^([^:]+):(\d{1,5})$/.exec(s);
  if (m === null) throw new Error(`${what} must be host:port, got "${s}"`);
  return { host: m[1]!, port: Number(m[2]) };
}

async function main(argv: readonly string[]): Promise<void> {
  let control: string | undefined;
  let seed = 1;
  const specs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === "--control") control = v;
    else if (a === "--seed") seed = Number(v);
    else if (a === "--link") specs.push(v);
    else throw new Error(`unknown argument ${a}`);
  }
  if (control === undefined || specs.length === 0) {
    throw new Error("usage: relay-main --control <socket> --seed <n> --link <listen>=<target> ...");
  }
  const rng = new SeededRng(seed);
  const links = new Map<string, LinkRelay>();
  for (const spec of specs) {
    const [from, to] = spec.split("=");
    const l = hostPort(from ?? "", "--link's listen side");
    const t = hostPort(to ?? "", "--link's target side");
    const relay = new LinkRelay({
      listenHost: l.host,
      listenPort: l.port,
      targetHost: t.host,
      targetPort: t.port,
      random: () => rng.float(),
    });
    await relay.start();
    links.set(from!, relay);
  }
  rmSync(control, { force: true });
  const server = createServer((sock) => {
    const lines = createInterface({ input: sock });
    lines.on("line", (line) => {
      try {
        applyControl(links, JSON.parse(line) as RelayControl);
        sock.write('{"ok":true}\n');
      } catch (err) {
        sock.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
      }
    });
    sock.on("error", () => sock.destroy());
  });
  await new Promise<void>((resolve) => server.listen(control, resolve));
  process.stdout.write("ready\n");
  const stop = (): void => {
    server.close();
    rmSync(control, { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`relay: ${(err as Error).message}\n`);
  process.exit(2);
});
