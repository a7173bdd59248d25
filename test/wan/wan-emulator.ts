/**
 * Emulated regions for the chaos run (and anything else built on its network namespaces): every
 * node advertises `http://10.78.0.<i>:<port>` and binds its real address `10.77.0.<i>`. Inside
 * node i's namespace the advertised addresses of all nodes sit on the loopback device, where a
 * relay process (relay-main.ts) listens and forwards to the real addresses, delaying each
 * directed link i→j as the region matrix says. The node processes are unmodified; partitions
 * (nftables on the real addresses) keep working, since each relay dials from its node's address.
 *
 * The matrix and the stalls come from a seed, so `--seed S` replays them. A stall holds every
 * byte on one directed link for a while, the TCP-level effect of a burst of loss.
 */
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ChaosNetwork } from "../chaos/netns.js";
import { nodeIp, sh, spawnInNamespace } from "../chaos/netns.js";
import { SeededRng } from "../chaos/seeded-rng.js";
import { sendControl } from "./relay-control.js";
import type { LinkProfile } from "./link-relay.js";

const RELAY_MAIN = fileURLToPath(new URL("./relay-main.ts", import.meta.url));

/** The first three octets of the advertised addresses. */
export const ADVERTISED_SUBNET = "10.78.0";
/** The address node i advertises (1-based). */
export const advertisedIp = (i: number): string => `${ADVERTISED_SUBNET}.${i}`;

export interface WanProfile {
  /** Round-trip times between two nodes are drawn from [minRttMs, maxRttMs]. */
  readonly minRttMs: number;
  readonly maxRttMs: number;
  /** Jitter as a share of the one-way delay. */
  readonly jitterShare: number;
  /** A stall starts every [minGapMs, maxGapMs] on a random directed link. 0: no stalls. */
  readonly stallGapMs: readonly [number, number];
  /** A stall lasts [min, max] ms. */
  readonly stallMs: readonly [number, number];
}

/** Regions 20-100 ms apart, 30% jitter, stalls of up to half a 1 s election timeout. */
export const REGIONS: WanProfile = {
  minRttMs: 20,
  maxRttMs: 100,
  jitterShare: 0.3,
  stallGapMs: [2000, 6000],
  stallMs: [100, 500],
};

/** The one-way delay of every directed link, ms: `delay[i][j]` for node i dialing node j. */
export function regionMatrix(size: number, profile: WanProfile, rng: SeededRng): number[][] {
  const m = Array.from({ length: size + 1 }, () => new Array<number>(size + 1).fill(0));
  for (let i = 1; i <= size; i++) {
    for (let j = i + 1; j <= size; j++) {
      const rtt = rng.between(profile.minRttMs, profile.maxRttMs);
      m[i]![j] = rtt / 2;
      m[j]![i] = rtt / 2;
    }
  }
  return m;
}

/** One-way delays (1-based, as regionMatrix) from a 0-based round-trip matrix; checks its shape. */
function matrixOf(size: number, rtt: readonly (readonly number[])[]): number[][] {
  const m = Array.from({ length: size + 1 }, () => new Array<number>(size + 1).fill(0));
  for (let i = 1; i <= size; i++) {
    for (let j = 1; j <= size; j++) {
      const v = rtt[i - 1]?.[j - 1];
      if (v === undefined || !(v >= 0) || v !== rtt[j - 1]?.[i - 1]) {
        throw new Error(`the round-trip matrix must be ${size}x${size}, symmetric, >= 0`);
      }
      m[i]![j] = v / 2;
    }
  }
  return m;
}

export class WanEmulator {
  private readonly relays: ChildProcess[] = [];
  private stallTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Stalls started so far. */
  stalls = 0;

  private constructor(
    private readonly network: ChaosNetwork,
    private readonly port: number,
    private readonly profile: WanProfile,
    private readonly rng: SeededRng,
    private readonly controlDir: string,
    readonly delays: number[][],
  ) {}

  private control(i: number): string {
    return join(this.controlDir, `relay-${i}.sock`);
  }

  /**
   * Puts the advertised addresses in every namespace, starts a relay process per node and sets
   * every link's delay. `logDir` receives relay-<i>.log; the control sockets go in `controlDir`.
   */
  static async start(o: {
    network: ChaosNetwork;
    port: number;
    profile: WanProfile;
    seed: number;
    logDir: string;
    controlDir: string;
    /** Round trips between nodes, ms, `rttMs[i-1][j-1]` (symmetric); default: drawn from `profile`. */
    rttMs?: readonly (readonly number[])[];
  }): Promise<WanEmulator> {
    const rng = new SeededRng(o.seed);
    const size = o.network.size;
    const delays =
      o.rttMs === undefined ? regionMatrix(size, o.profile, rng) : matrixOf(size, o.rttMs);
    const wan = new WanEmulator(o.network, o.port, o.profile, rng, o.controlDir, delays);
    try {
      for (let i = 1; i <= size; i++) {
        const ns = o.network.ns(i);
        for (let j = 1; j <= size; j++) {
          await sh("ip", [
            "netns",
            "exec",
            ns,
            "ip",
            "addr",
            "add",
            `${advertisedIp(j)}/32`,
            "dev",
            "lo",
          ]);
        }
        const links = Array.from({ length: size }, (_, k) => k + 1).flatMap((j) => [
          "--link",
          `${advertisedIp(j)}:${o.port}=${nodeIp(j)}:${o.port}`,
        ]);
        const log = openSync(join(o.logDir, `relay-${i}.log`), "a");
        const p = spawnInNamespace(
          ns,
          process.execPath,
          [
            "--import",
            "tsx",
            RELAY_MAIN,
            "--control",
            wan.control(i),
            "--seed",
            String(rng.int(1e9)),
            ...links,
          ],
          ["ignore", log, log],
        );
        closeSync(log);
        wan.relays.push(p);
      }
      await Promise.all(
        wan.relays.map((_, k) => waitForSocket(wan.control(k + 1), wan.relays[k]!)),
      );
      for (let i = 1; i <= size; i++) {
        for (let j = 1; j <= size; j++) {
          const d = wan.delays[i]![j]!;
          const jitterMs = d * o.profile.jitterShare;
          await sendControl(wan.control(i), {
            link: `${advertisedIp(j)}:${o.port}`,
            out: { delayMs: d, jitterMs },
            back: { delayMs: d, jitterMs },
          });
        }
      }
    } catch (err) {
      wan.stop();
      throw err;
    }
    return wan;
  }

  /** The matrix as text: round-trip ms between every pair. */
  describe(): string {
    const size = this.network.size;
    const rows = [];
    for (let i = 1; i <= size; i++) {
      const cells = [];
      for (let j = 1; j <= size; j++)
        cells.push(String(Math.round(2 * this.delays[i]![j]!)).padStart(4));
      rows.push(`    n${i} ${cells.join("")}`);
    }
    return `round trips (ms), jitter ${Math.round(this.profile.jitterShare * 100)}% each way:\n${rows.join("\n")}`;
  }

  /** Starts stalling a random directed link now and then; `onStall` hears of each. */
  startStalls(onStall: (from: number, to: number, ms: number) => void): void {
    const [lo, hi] = this.profile.stallGapMs;
    if (hi <= 0) return;
    const next = (): void => {
      this.stallTimer = setTimeout(
        () => {
          if (this.stopped) return;
          const size = this.network.size;
          const from = 1 + this.rng.int(size);
          const to = 1 + ((from + this.rng.int(size - 1)) % size);
          const ms = this.rng.between(this.profile.stallMs[0], this.profile.stallMs[1]);
          this.stalls++;
          onStall(from, to, ms);
          sendControl(this.control(from), {
            link: `${advertisedIp(to)}:${this.port}`,
            stall: ms,
          }).catch(() => undefined);
          next();
        },
        this.rng.between(lo, hi),
      );
    };
    next();
  }

  /** Changes the links from node `from` to node `to` (both directions of its connections). */
  async setLink(from: number, to: number, p: Partial<LinkProfile>): Promise<void> {
    await sendControl(this.control(from), {
      link: `${advertisedIp(to)}:${this.port}`,
      out: p,
      back: p,
    });
  }

  /** The round trip between two nodes as emulated, ms. */
  rtt(i: number, j: number): number {
    return 2 * this.delays[i]![j]!;
  }

  /** No more stalls (the links keep their delays). */
  stopStalls(): void {
    this.stopped = true;
    if (this.stallTimer !== undefined) clearTimeout(this.stallTimer);
  }

  /** Stops the stalls and the relay processes (the namespaces go with the network). */
  stop(): void {
    this.stopStalls();
    for (const p of this.relays) p.kill("SIGKILL");
  }
}

/** Resolves once a relay's control socket answers; rejects if the relay exits first. */
async function waitForSocket(path: string, p: ChildProcess): Promise<void> {
  let exited = false;
  p.once("exit", () => (exited = true));
  const deadline = performance.now() + 30_000;
  for (;;) {
    try {
      await sendControl(path, { link: "*" });
      return;
    } catch {
      if (exited)
        throw new Error(`the WAN relay for ${path} exited while starting (see relay-*.log)`);
      if (performance.now() > deadline) throw new Error(`the WAN relay for ${path} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
