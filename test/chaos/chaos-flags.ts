/**
 * The flags of `npm run chaos`: parsed and validated, with a clear message for every bad one.
 */

export interface ChaosFlags {
  /** Length of the fault phase, seconds. */
  readonly seconds: number;
  readonly reads: "linearizable" | "lease";
  /** The nemesis and workload seed; random when not given. */
  readonly seed: number | undefined;
  readonly clients: number;
  /** Clients of the exactly-once workload (once-workload.ts); 0: none. */
  readonly onceClients: number;
  readonly keys: number;
  /** Keep the history and node logs even when the run passes. */
  readonly keep: boolean;
  /** Mean pause between a client's operations, ms. */
  readonly thinkMs: number;
  /** Share of reads sent as local reads. */
  readonly localShare: number;
  /** The nodes' -log-level. */
  readonly nodeLogLevel: "debug" | "info" | "warn" | "error";
  /** Emulated regions between the nodes (test/wan): delays, jitter and stalls. */
  readonly wan: boolean;
  readonly help: boolean;
}

export const CHAOS_USAGE = `usage: npm run chaos -- [--seconds N] [--reads linearizable|lease] [--seed S]
                        [--clients N] [--once-clients N] [--keys N] [--think-ms N] [--local-share F]
                        [--node-log-level L] [--wan] [--keep]

Runs a 5-node sqlite_repl cluster in private network namespaces (needs root, ip, unshare, nft),
drives concurrent clients doing reads, writes and compare-and-set on a few registers while a
seeded nemesis kills, pauses, partitions and re-adds nodes, then checks that the replicas converge
and that the history is linearizable. Exit 0 only when it is linearizable and converged.

  --seconds N       length of the fault phase (default 60, at least 10)
  --reads MODE      linearizable (ReadIndex, the default) or lease (-nexusLeaseBasedReads on every
                    node and consistency=lease on every read)
  --seed S          replay the nemesis plan and workload choices of seed S (default: random)
  --clients N       concurrent sequential clients (default 6, 1 to 32)
  --once-clients N  clients sending counter increments and inserts with request ids, retried
                    through the faults, each read back with min-index on a random node; at the
                    end every counter must match its acknowledged increments and no insert may
                    appear twice (default 2, 0 to 16)
  --keys N          registers (default 4, 1 to 26)
  --think-ms N      mean pause between a client's operations (default 10)
  --local-share F   share of reads sent with consistency=local (default 0.2, 0 to 1)
  --node-log-level L  the nodes' -log-level: debug, info (default), warn or error
  --wan             put the nodes in emulated regions (test/wan): round trips of 20-100 ms
                    between nodes, 30% jitter, and stalls of 100-500 ms on random links, on top
                    of the faults; the delays come from the seed
  --keep            keep history.jsonl and node logs even when the run passes
  --help            this text
`;

/** A bad flag: the message says which and what is expected. */
export class ChaosFlagError extends Error {
  override readonly name = "ChaosFlagError";
}

const DEFAULTS: ChaosFlags = {
  seconds: 60,
  reads: "linearizable",
  seed: undefined,
  clients: 6,
  onceClients: 2,
  keys: 4,
  keep: false,
  thinkMs: 10,
  localShare: 0.2,
  nodeLogLevel: "info",
  wan: false,
  help: false,
};

function int(name: string, raw: string, min: number, max: number): number {
  const v = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ChaosFlagError(`--${name} takes an integer from ${min} to ${max}, got "${raw}"`);
  }
  return v;
}

/** Parses `--flag value` and `--flag=value` (one dash works too). Throws ChaosFlagError. */
export function parseChaosFlags(argv: readonly string[]): ChaosFlags {
  const f: { -readonly [K in keyof ChaosFlags]: ChaosFlags[K] } = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m === null) throw new ChaosFlagError(`unexpected argument "${a}" (flags start with --)`);
    const name = m[1]!;
    const value = (): string => {
      if (m[2] !== undefined) return m[2];
      const v = argv[++i];
      if (v === undefined) throw new ChaosFlagError(`--${name} needs a value`);
      return v;
    };
    switch (name) {
      case "seconds":
        f.seconds = int(name, value(), 10, 86_400);
        break;
      case "reads": {
        const v = value();
        if (v !== "linearizable" && v !== "lease") {
          throw new ChaosFlagError(`--reads must be linearizable or lease, got "${v}"`);
        }
        f.reads = v;
        break;
      }
      case "seed":
        f.seed = int(name, value(), 0, 0xffffffff);
        break;
      case "clients":
        f.clients = int(name, value(), 1, 32);
        break;
      case "once-clients":
        f.onceClients = int(name, value(), 0, 16);
        break;
      case "keys":
        f.keys = int(name, value(), 1, 26);
        break;
      case "think-ms":
        f.thinkMs = int(name, value(), 0, 10_000);
        break;
      case "local-share": {
        const raw = value();
        const v = Number(raw);
        if (raw.trim() === "" || !Number.isFinite(v) || v < 0 || v > 1) {
          throw new ChaosFlagError(`--local-share takes a number from 0 to 1, got "${raw}"`);
        }
        f.localShare = v;
        break;
      }
      case "node-log-level": {
        const v = value();
        if (v !== "debug" && v !== "info" && v !== "warn" && v !== "error") {
          throw new ChaosFlagError(
            `--node-log-level must be debug, info, warn or error, got "${v}"`,
          );
        }
        f.nodeLogLevel = v;
        break;
      }
      case "keep":
      case "wan":
      case "help":
        if (m[2] !== undefined) throw new ChaosFlagError(`--${name} takes no value`);
        f[name] = true;
        break;
      default:
        throw new ChaosFlagError(`unknown flag --${name}`);
    }
  }
  return f;
}

/** The register names of a run with n keys: a, b, c, ... */
export function keyNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));
}
