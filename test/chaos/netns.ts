/**
 * The chaos run's private network: one network namespace per node, each with its own IP on a
 * bridge that lives in the runner's own (unshared) namespace, and nftables rules inside the node
 * namespaces to cut node-to-node traffic (partitions). Clients reach every node from the runner's
 * address, which partitions never block.
 *
 * Namespace names are global on the machine (`ip netns add` bind-mounts them under /run/netns),
 * so every run names its namespaces `nxc-<runner pid>-n<i>`; `cleanupStale()` removes those of
 * runs whose process is gone (a crashed or killed harness) together with every process left
 * inside them and their data folders.
 */
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The first three octets of the run's private subnet (a /24). */
export const SUBNET = "10.77.0";
/** The runner's address on the bridge: the clients' source address. */
export const RUNNER_IP = `${SUBNET}.100`;
/** The prefix of every namespace and folder a chaos run creates. */
export const NAME_PREFIX = "nxc-";

/** The IP of node i (1-based). */
export const nodeIp = (i: number): string => `${SUBNET}.${i}`;

/** The namespace name of node i of the run whose runner has pid `pid`. */
export const namespaceOf = (pid: number, i: number): string => `${NAME_PREFIX}${pid}-n${i}`;

/** The bridge of the run whose runner has pid `pid` (in the runner's namespace). */
const bridgeOf = (pid: number): string => `nxcbr${pid % 100_000}`;

/** The run's scratch folder (node data), removed at the end and by cleanupStale. */
export const workDirOf = (pid: number): string => join(tmpdir(), `${NAME_PREFIX}${pid}`);

/** Runs a command; rejects with its stderr when it fails. */
export function sh(cmd: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`${cmd} ${args.join(" ")} failed: ${stderr.trim() || err.message}`));
      } else resolve(stdout);
    });
    if (input !== undefined) p.stdin?.end(input);
  });
}

/** Which peers each node cannot exchange packets with (symmetric; node numbers 1-based). */
export type Blocks = ReadonlyMap<number, ReadonlySet<number>>;

/** The run's network: a bridge and one namespace per node. */
export class ChaosNetwork {
  private destroyed = false;

  private constructor(
    /** The runner's pid, part of every name. */
    readonly pid: number,
    /** Number of nodes. */
    readonly size: number,
  ) {}

  /** The namespace of node i (1-based). */
  ns(i: number): string {
    return namespaceOf(this.pid, i);
  }

  /**
   * Creates the bridge (in the current namespace, which must be the runner's private one) and one
   * namespace per node with a veth pair into it and an empty nftables table for partitions.
   */
  static async create(size: number, pid = process.pid): Promise<ChaosNetwork> {
    const net = new ChaosNetwork(pid, size);
    const br = bridgeOf(pid);
    try {
      await sh("ip", ["link", "set", "lo", "up"]);
      await sh("ip", ["link", "add", br, "type", "bridge"]);
      await sh("ip", ["addr", "add", `${RUNNER_IP}/24`, "dev", br]);
      await sh("ip", ["link", "set", br, "up"]);
      for (let i = 1; i <= size; i++) {
        const ns = net.ns(i);
        const veth = `nxcv${pid % 100_000}-${i}`;
        await sh("ip", ["netns", "add", ns]);
        await sh("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        await sh("ip", ["link", "set", veth, "master", br, "up"]);
        const inNs = (...a: string[]): Promise<string> => sh("ip", ["netns", "exec", ns, ...a]);
        await inNs("ip", "link", "set", "lo", "up");
        await inNs("ip", "addr", "add", `${nodeIp(i)}/24`, "dev", "eth0");
        await inNs("ip", "link", "set", "eth0", "up");
        // Partitions drop inbound packets from blocked peers on both sides: silent, like a cut
        // cable (an output rule would fail connect() at once with EPERM, which no network does).
        await sh(
          "ip",
          ["netns", "exec", ns, "nft", "-f", "-"],
          [
            "table inet nxchaos {",
            "  set blocked { type ipv4_addr; }",
            "  chain input { type filter hook input priority 0; policy accept; ip saddr @blocked drop; }",
            "}",
          ].join("\n"),
        );
      }
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  /** Replaces every node's blocked set with `blocks` (nodes absent from it see everyone). */
  async applyBlocks(blocks: Blocks): Promise<void> {
    await Promise.all(
      Array.from({ length: this.size }, (_, k) => k + 1).map((i) => {
        const peers = [...(blocks.get(i) ?? [])].map(nodeIp);
        const script =
          `flush set inet nxchaos blocked\n` +
          (peers.length > 0 ? `add element inet nxchaos blocked { ${peers.join(", ")} }\n` : "");
        return sh("ip", ["netns", "exec", this.ns(i), "nft", "-f", "-"], script);
      }),
    );
  }

  /** The blocked peers of node i as nftables has them now (for tests and reports). */
  async blockedOf(i: number): Promise<string[]> {
    const out = await sh("ip", [
      "netns",
      "exec",
      this.ns(i),
      "nft",
      "list",
      "set",
      "inet",
      "nxchaos",
      "blocked",
    ]);
    const m = /elements = \{([^}]*)\}/.exec(out);
    return m === null
      ? []
      : m[1]!
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "");
  }

  /** Removes every partition. */
  heal(): Promise<void> {
    return this.applyBlocks(new Map());
  }

  /**
   * Kills whatever still runs inside the namespaces and deletes them, and the bridge (so another
   * network can be made in the same runner namespace). Idempotent.
   */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (let i = 1; i <= this.size; i++) await removeNamespace(this.ns(i));
    await sh("ip", ["link", "del", bridgeOf(this.pid)]).catch(() => undefined);
  }
}

/** Kills every process inside namespace `ns` and deletes it; no error if it does not exist. */
export async function removeNamespace(ns: string): Promise<void> {
  if (!existsSync(join("/run/netns", ns))) return;
  const pids = await sh("ip", ["netns", "pids", ns]).catch(() => "");
  for (const p of pids.split(/\s+/).filter((s) => s !== "")) {
    try {
      process.kill(Number(p), "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  // Wait (briefly) for the processes to be gone, so the namespace is really released.
  for (let k = 0; k < 50; k++) {
    const left = await sh("ip", ["netns", "pids", ns]).catch(() => "");
    if (left.trim() === "") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await sh("ip", ["netns", "del", ns]).catch(() => undefined);
}

/** Whether a process with this pid runs the chaos harness (pid reuse is not mistaken for it). */
function isChaosRunner(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmd.includes("chaos");
  } catch {
    return false;
  }
}

/**
 * Removes the namespaces (and the processes inside) and scratch folders of earlier runs whose
 * runner is gone; `onlyPid` restricts it to one run (the supervisor cleaning up after its child,
 * whatever way it ended). Returns what was removed.
 */
export async function cleanupStale(onlyPid?: number): Promise<string[]> {
  const removed: string[] = [];
  const isStale = (pid: number): boolean =>
    onlyPid === undefined ? !isChaosRunner(pid) : pid === onlyPid;
  const nsRe = new RegExp(`^${NAME_PREFIX}(\\d+)-n\\d+$`);
  const dirRe = new RegExp(`^${NAME_PREFIX}(\\d+)$`);
  const nsNames = existsSync("/run/netns") ? readdirSync("/run/netns") : [];
  for (const ns of nsNames) {
    const m = nsRe.exec(ns);
    if (m === null || !isStale(Number(m[1]))) continue;
    await removeNamespace(ns);
    removed.push(`netns ${ns}`);
  }
  for (const d of readdirSync(tmpdir())) {
    const m = dirRe.exec(d);
    if (m === null || !isStale(Number(m[1]))) continue;
    rmSync(join(tmpdir(), d), { recursive: true, force: true });
    removed.push(`dir ${join(tmpdir(), d)}`);
  }
  return removed;
}

/** Spawns `cmd` inside namespace `ns` (`ip netns exec` execs, so the pid is the command's). */
export function spawnInNamespace(
  ns: string,
  cmd: string,
  args: readonly string[],
  stdio: [number | "ignore", number, number],
  env: NodeJS.ProcessEnv = process.env,
): ReturnType<typeof spawn> {
  return spawn("ip", ["netns", "exec", ns, cmd, ...args], { stdio, detached: true, env });
}
