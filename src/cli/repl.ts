/**
 * `repl`: the original's command-line client of the Nexus service, with its commands and outputs,
 * plus `sqlite load|save`. Errors go to stderr with a non-zero exit code (see exit-codes.ts); a
 * save carries a request id and is sent again with it while its outcome is unknown, until
 * -timeout has passed (save-once.ts): it applies once.
 */
import { randomUUID } from "node:crypto";
import { saveOnce } from "./save-once.js";
import { createNexusClient } from "../api/client.js";
import type { NexusClient } from "../api/client.js";
import type { NexusError } from "../errors/index.js";
import { isNexusError } from "../errors/index.js";
import { CLIENT_SECURITY_FLAGS, clientSecurityOf } from "./client-security-flags.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { FlagSpec } from "./flags.js";
import { FlagError, bool, describeFlags, int, parseFlags, str } from "./flags.js";
import { OUTPUT_FLAG, outputFormat } from "./output.js";
import type { Io } from "./serve.js";
import { askOnStdin, parseRestoreArgs, runReplRestore } from "./repl-restore.js";
import { printRequestOutcome } from "./repl-outcome.js";
import { validateRequestId } from "../store/request-records.js";
import { BOUND_ARGS } from "../node/bounded-read.js";
import { MIN_INDEX_ARG } from "../api/request-args.js";
import type { Ask } from "./repl-restore.js";
import { VERSION_FLAG, versionLine } from "./version.js";
import { snapshotPercent } from "../node/member-progress.js";
import type { MemberSnapshotProgress } from "../node/replicator.js";

const FLAGS: readonly FlagSpec[] = [
  {
    name: "timeout",
    kind: "int",
    min: 1,
    default: 30,
    help: "seconds to wait for an answer; a save without one has an unknown outcome",
  },
  {
    name: "consistency",
    kind: "string",
    help:
      "for loads: linearizable (the node's default), lease, local, or bounded (a follower's own " +
      "store within -max-lag-entries / -max-lag-ms of its leader)",
  },
  {
    name: "max-lag-entries",
    kind: "int",
    min: 0,
    help: "for bounded loads: how many committed entries the node may be behind its leader",
  },
  {
    name: "max-lag-ms",
    kind: "int",
    min: 0,
    help: "for bounded loads: how long ago (ms) the node may last have heard from its leader",
  },
  {
    name: "on-stale",
    kind: "string",
    help: "for bounded loads beyond the bound: refuse (TOO_STALE, the default) or linearizable",
  },
  {
    name: "min-index",
    kind: "int",
    min: 0,
    help:
      "for loads: wait until the node has applied this log index (a save's index: `outcome <request-id>` shows it), " +
      "then read its own store (read-your-writes on any node)",
  },
  {
    name: "request-id",
    kind: "string",
    help:
      "for saves: the request id to send (default: a new one per save). A save repeating an id " +
      "already committed is not applied again and answers the first result (within the nodes' " +
      "-nexus-request-window); `outcome <id>` tells whether it committed",
  },
  {
    name: "params",
    kind: "string",
    help: "for sqlite and mysql: statement parameters as a JSON array or object, e.g. '[\"a\", 1]'",
  },
  OUTPUT_FLAG,
  ...CLIENT_SECURITY_FLAGS,
  VERSION_FLAG,
];

export function replUsage(name: string): string {
  return (
    `Usage: ${name} [flags] <nexus_url> <command> [<options>]\n` +
    "Following commands are supported:\n" +
    "listNodes [-o json]                           (json: one document for scripts)\n" +
    "addNode <nodeAddr> [--learner] [--no-probe]\n" +
    "removeNode <nodeAddr>\n" +
    "promoteNode <nodeAddr> [--max-lag <entries>] [--wait [--wait-timeout <s>]]  (a learner becomes a\n" +
    "    voter; ask the leader; --wait first waits for it to catch up, showing its progress)\n" +
    "replaceNode <oldAddr> <newAddr> [--no-probe]  (one joint-consensus change)\n" +
    "transferLeader [<nodeAddr>]                   (to the given or the most up-to-date voter)\n" +
    "checkConsistency                              (digest every replica's store at one index now)\n" +
    "outcome <request-id> [-o json]               (did a save with this id commit, and with what\n" +
    "    result; repl prints a save's id when its outcome stays unknown)\n" +
    "restore <file> [-y|--yes]                     (replace the cluster's state with a backup, on\n" +
    "    every replica at one log index; asks first unless --yes)\n" +
    "mysql load <expression>\n" +
    "mysql save <expression>\n" +
    "redis load db.index=<num> <expression>\n" +
    "redis save db.index=<num> <expression>\n" +
    "sqlite load <expression>\n" +
    "sqlite save <expression>\n" +
    "\n<nexus_url> is the gRPC address of any node, host:port (e.g. 127.0.0.1:9121).\n" +
    "<nodeAddr> is a node's peer URL, as in -nexus-node-url (e.g. http://127.0.0.1:9024).\n" +
    "\nMembership: start a new node with -nexus-cluster-url naming the existing members and its\n" +
    "own -nexus-node-url (not in that list, or with -nexus-node-state new), then addNode it:\n" +
    "addNode first checks that its URL answers. Or add it first with --no-probe and start it\n" +
    "afterwards (until then it counts as not answering). --learner adds a replica that receives\n" +
    "every write and serves local reads but never votes; promoteNode makes it a voter once it\n" +
    "lags at most --max-lag entries (default 1000). Send promoteNode, and transferLeader without\n" +
    "a target, to the leader. A change after which fewer voters would answer than a quorum needs\n" +
    "is refused, and so is any change while a joint change is under way.\n" +
    `\nflags (before <nexus_url>):\n${describeFlags(FLAGS)}` +
    "\nexit status: 0 done, 1 the request failed, 2 usage, 3 address unreachable, 4 outcome unknown\n"
  );
}

/** The original's params parser: `k=v,k2=v2`, spaces trimmed, pairs without "=" ignored. */
export function scanParams(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(",")) {
    const j = part.indexOf("=");
    if (j >= 0) out[part.slice(0, j).trim()] = part.slice(j + 1).trim();
  }
  return out;
}

const STORES: Record<string, string> = { redis: "Redis", mysql: "MySQL", sqlite: "SQLite" };
const dec = new TextDecoder();
const enc = new TextEncoder();

/**
 * The original's lines, then one line per member with its role, whether the leader hears from it,
 * and its replication progress (known on the leader only).
 */
async function printMembers(c: NexusClient, io: Io): Promise<void> {
  const { leader, nodes } = await c.listNodes();
  if (leader === "" || !nodes.some((n) => n.id === leader)) {
    io.out("WARNING: Cluster unhealthy, leader unknown\n");
  }
  io.out("Current cluster members:\n");
  for (const n of nodes) io.out(`${n.id} => ${n.url}${n.id === leader ? " (leader)" : ""}\n`);
  const detail = await c.listMembers();
  if (detail.joint) io.out("(a joint membership change is under way)\n");
  io.out("\nid               role      reachable  match  lag\n");
  for (const m of detail.members) {
    const known = detail.fromLeader;
    const snap = known && m.snapshot !== undefined ? `  ${describeSnapshot(m.snapshot)}` : "";
    io.out(
      `${m.id} ${m.role.padEnd(9)} ${(known ? (m.reachable ? "yes" : "no") : "-").padEnd(10)} ` +
        `${(known ? String(m.match) : "-").padEnd(6)} ${known ? String(m.lag) : "-"}${snap}\n`,
    );
  }
  if (!detail.fromLeader)
    io.out("(progress unknown: only the leader tracks it, and no leader answered)\n");
  if (!detail.members.some((m) => m.id === detail.self)) {
    io.out(
      `(the node answering, ${detail.self}, is not a member: this view may be stale; ask another node)\n`,
    );
  }
}

const MB = 1024 * 1024;

/** "receiving snapshot 42% (3.1 of 7.4 MB, index 1200)": a member the leader sends a snapshot. */
export function describeSnapshot(s: MemberSnapshotProgress): string {
  const pct = snapshotPercent(s);
  const size =
    s.totalBytes === undefined
      ? `${(s.bytes / MB).toFixed(1)} MB`
      : `${(s.bytes / MB).toFixed(1)} of ${(s.totalBytes / MB).toFixed(1)} MB`;
  return `receiving snapshot ${pct === undefined ? "" : `${pct}% `}(${size}, index ${s.index})`;
}

/**
 * `repl listNodes -o json`: field names are stable (documented in docs/configuration.md); new
 * fields may be added, none renamed or removed.
 */
export interface ListNodesJson {
  /** The leader's id, null when the answering node knows none. */
  readonly leader: string | null;
  /** The answering node's id. */
  readonly self: string;
  /** A joint membership change is under way. */
  readonly joint: boolean;
  /** Whether reachable, match and lag come from the leader (null in each member otherwise). */
  readonly fromLeader: boolean;
  readonly members: readonly {
    readonly id: string;
    readonly url: string;
    /** "leader", "follower" or "learner". */
    readonly role: string;
    readonly isLeader: boolean;
    readonly reachable: boolean | null;
    readonly match: number | null;
    readonly lag: number | null;
    /**
     * Set while the leader sends this member a snapshot: its index, bytes streamed, its size
     * (null until known) and the percent done (null until the size is known); null otherwise.
     */
    readonly snapshot: {
      readonly index: number;
      readonly bytes: number;
      readonly totalBytes: number | null;
      readonly percent: number | null;
    } | null;
  }[];
}

async function printMembersJson(c: NexusClient, io: Io): Promise<void> {
  const d = await c.listMembers();
  const known = d.fromLeader;
  const doc: ListNodesJson = {
    leader: d.leader === "" ? null : d.leader,
    self: d.self,
    joint: d.joint,
    fromLeader: known,
    members: d.members.map((m) => ({
      id: m.id,
      url: m.url,
      role: m.role,
      isLeader: m.id === d.leader,
      reachable: known ? m.reachable : null,
      match: known ? m.match : null,
      lag: known ? m.lag : null,
      snapshot:
        known && m.snapshot !== undefined
          ? {
              index: m.snapshot.index,
              bytes: m.snapshot.bytes,
              totalBytes: m.snapshot.totalBytes ?? null,
              percent: snapshotPercent(m.snapshot) ?? null,
            }
          : null,
    })),
  };
  io.out(`${JSON.stringify(doc, null, 2)}\n`);
}

/**
 * Splits a membership command's arguments into its options (`--name` or `-name`, `--name value`
 * or `--name=value` for those in `withValue`) and the rest. Unknown options are usage errors.
 */
function membershipOptions(
  args: readonly string[],
  flags: readonly string[],
  withValue: readonly string[] = [],
): { set: Set<string>; values: Map<string, string>; rest: string[] } {
  const set = new Set<string>();
  const values = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(a);
    if (m === null) {
      rest.push(a);
      continue;
    }
    const name = m[1]!;
    if (withValue.includes(name)) {
      const v = m[2] ?? args[++i];
      if (v === undefined || v === "") throw new UsageError(`--${name} needs a value`);
      values.set(name, v);
    } else if (flags.includes(name) && m[2] === undefined) {
      set.add(name);
    } else {
      throw new UsageError(`unknown option "${a}"`);
    }
  }
  return { set, values, rest };
}

class UsageError extends Error {}

/**
 * -o text|json also after the command (`repl <addr> listNodes -o json`): whether JSON is asked
 * for (`json`, from the flags before the address, unless given here), and the other arguments.
 */
function trailingFormat(args: readonly string[], json: boolean): { json: boolean; rest: string[] } {
  const o = membershipOptions(args, [], ["o", "output"]);
  const fmt = o.values.get("o") ?? o.values.get("output");
  if (fmt !== undefined && fmt !== "text" && fmt !== "json") {
    throw new UsageError(`-o must be text or json, got "${fmt}"`);
  }
  return { json: fmt === undefined ? json : fmt === "json", rest: o.rest };
}

/** How often `promoteNode --wait` asks the leader for the learner's progress. */
const WAIT_POLL_MS = 500;

/**
 * `promoteNode --wait`: asks the answering node (the leader: only it knows the progress) every
 * half second how far the learner is behind, and returns once it answers the leader and lags at
 * most `maxLag` entries. Progress goes to stderr: one line rewritten in place on a terminal,
 * otherwise a line every 5 s. FAILED when the member is not a learner, the answering node is not
 * the leader, or the wait outlasts `timeoutMs`.
 */
async function waitForCatchUp(
  client: NexusClient,
  io: Io,
  url: string,
  maxLag: number,
  timeoutMs: number,
): Promise<number> {
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let first: { at: number; match: number } | undefined;
  let lastLine = 0;
  for (;;) {
    const d = await client.listMembers();
    const m = d.members.find((x) => x.url === url);
    if (m === undefined) {
      io.err(`repl: ${url} is not a member; add it first with addNode ${url} --learner\n`);
      return EXIT.FAILED;
    }
    if (m.role !== "learner") {
      io.err(`repl: ${url} is not a learner (it is a ${m.role}); nothing to promote\n`);
      return EXIT.FAILED;
    }
    if (!d.fromLeader || d.leader !== d.self) {
      io.err(
        "repl: promoteNode --wait must be sent to the leader, which alone knows how far the " +
          `learner is behind${d.leader === "" ? " (no leader is known now)" : ` (the leader is ${d.leader})`}\n`,
      );
      return EXIT.FAILED;
    }
    const now = Date.now();
    first ??= { at: now, match: m.match };
    const rate = now > first.at ? ((m.match - first.match) * 1000) / (now - first.at) : 0;
    const eta =
      rate > 0 && m.lag > maxLag ? ` (about ${Math.ceil((m.lag - maxLag) / rate)} s left)` : "";
    const line =
      `waiting for ${m.id} to catch up: ${m.reachable ? "answering" : "not answering"}, ` +
      (m.snapshot !== undefined
        ? `${describeSnapshot(m.snapshot)}, ${m.lag} entries behind`
        : `match ${m.match}, ${m.lag} entries behind (at most ${maxLag}), ${rate.toFixed(0)} entries/s${eta}`);
    const done = m.reachable && m.lag <= maxLag;
    if (tty) process.stderr.write(`\r\x1b[K${line}${done ? "\n" : ""}`);
    else if (done || now - lastLine >= 5000) {
      io.err(`${line}\n`);
      lastLine = now;
    }
    if (done) {
      io.err(`${m.id} caught up after ${((now - started) / 1000).toFixed(1)} s; promoting\n`);
      return EXIT.OK;
    }
    if (now - started >= timeoutMs) {
      if (tty) process.stderr.write("\n");
      io.err(
        `repl: ${url} did not catch up within ${Math.round(timeoutMs / 1000)} s ` +
          `(${m.lag} entries behind); not promoted. Check that it runs and reaches the leader, ` +
          "or wait longer with --wait-timeout <seconds>\n",
      );
      return EXIT.FAILED;
    }
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}

/** Runs repl; resolves with the exit code. */
export async function runRepl(
  argv: readonly string[],
  io: Io,
  name = "repl",
  ask: Ask = askOnStdin,
): Promise<number> {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv, FLAGS, { allowPositionals: true, stopAtPositional: true });
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`${name}: ${err.message}\n\n${replUsage(name)}`);
    return EXIT.USAGE;
  }
  if (flags.help) {
    io.out(replUsage(name));
    return EXIT.OK;
  }
  if (bool(flags, "version")) {
    io.out(versionLine());
    return EXIT.OK;
  }
  const [address, rawCmd, ...args] = flags.positionals.map((a) => a.trim());
  if (address === undefined || rawCmd === undefined) {
    io.err(`${name}: give an address and a command\n\n${replUsage(name)}`);
    return EXIT.USAGE;
  }
  let json: boolean;
  try {
    json = outputFormat(flags) === "json";
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`${name}: ${err.message}\n\n${replUsage(name)}`);
    return EXIT.USAGE;
  }
  const consistency = str(flags, "consistency");
  if (
    consistency !== undefined &&
    !["linearizable", "lease", "local", "bounded"].includes(consistency)
  ) {
    io.err(
      `${name}: flag -consistency must be linearizable, lease, local or bounded, got "${consistency}"\n`,
    );
    return EXIT.USAGE;
  }
  // The read's own args: a bound (checked by the node: at least one limit) and a minimum index.
  const readArgs: Record<string, string> = {};
  for (const [flag, arg] of [
    ["max-lag-entries", BOUND_ARGS.maxLagEntries],
    ["max-lag-ms", BOUND_ARGS.maxLagMs],
    ["min-index", MIN_INDEX_ARG],
  ] as const) {
    const v = int(flags, flag);
    if (v !== undefined) readArgs[arg] = String(v);
  }
  const onStale = str(flags, "on-stale");
  if (onStale !== undefined) {
    if (onStale !== "refuse" && onStale !== "linearizable") {
      io.err(`${name}: flag -on-stale must be refuse or linearizable, got "${onStale}"\n`);
      return EXIT.USAGE;
    }
    readArgs[BOUND_ARGS.onStale] = onStale;
  }
  const requestId = str(flags, "request-id");
  if (requestId !== undefined) {
    try {
      validateRequestId(requestId);
    } catch (err) {
      io.err(`${name}: flag -request-id: ${(err as Error).message}\n`);
      return EXIT.USAGE;
    }
  }
  const params = str(flags, "params");
  if (params !== undefined) {
    try {
      const p: unknown = JSON.parse(params);
      if (typeof p !== "object" || p === null) throw new Error("not an array or object");
    } catch (err) {
      io.err(`${name}: flag -params must be a JSON array or object: ${(err as Error).message}\n`);
      return EXIT.USAGE;
    }
  }
  let client: NexusClient;
  try {
    client = createNexusClient(address, {
      timeoutMs: int(flags, "timeout")! * 1000,
      ...clientSecurityOf(flags),
    });
  } catch (err) {
    io.err(`${name}: ${(err as Error).message}\n`);
    return EXIT.USAGE;
  }
  try {
    const cmd = rawCmd.toLowerCase();
    switch (cmd) {
      case "listnodes": {
        if (trailingFormat(args, json).json) await printMembersJson(client, io);
        else await printMembers(client, io);
        return EXIT.OK;
      }
      case "addnode":
      case "removenode":
      case "promotenode": {
        const o = membershipOptions(
          args,
          cmd === "addnode" ? ["learner", "no-probe"] : cmd === "promotenode" ? ["wait"] : [],
          cmd === "promotenode" ? ["max-lag", "wait-timeout"] : [],
        );
        const url = o.rest[0];
        if (url === undefined || url === "") throw new UsageError("<nodeAddr> must be provided");
        if (o.rest.length > 1) throw new UsageError(`unexpected argument "${o.rest[1]}"`);
        if (cmd === "addnode") {
          // The original's RPC for a voter it may probe; the admin service otherwise.
          const learner = o.set.has("learner");
          const probe = !o.set.has("no-probe");
          if (learner || !probe) await client.addMember(url, learner, { probe });
          else await client.addNode(url);
        } else if (cmd === "removenode") await client.removeNode(url);
        else {
          const lag = o.values.get("max-lag");
          if (lag !== undefined && !/^\d+$/.test(lag)) {
            throw new UsageError(`--max-lag must be a number of entries, got "${lag}"`);
          }
          const maxLag = lag === undefined ? 1000 : Number(lag);
          if (o.set.has("wait")) {
            const wt = o.values.get("wait-timeout") ?? "600";
            if (!/^\d+$/.test(wt) || Number(wt) < 1) {
              throw new UsageError(`--wait-timeout must be a number of seconds, got "${wt}"`);
            }
            const code = await waitForCatchUp(client, io, url, maxLag, Number(wt) * 1000);
            if (code !== EXIT.OK) return code;
          } else if (o.values.has("wait-timeout")) {
            throw new UsageError("--wait-timeout goes with --wait");
          }
          await client.promoteMember(url, lag === undefined ? {} : { maxLagEntries: maxLag });
        }
        await printMembers(client, io);
        return EXIT.OK;
      }
      case "replacenode": {
        const o = membershipOptions(args, ["no-probe"]);
        const [oldUrl, newUrl, extra] = o.rest;
        if (oldUrl === undefined || newUrl === undefined || extra !== undefined) {
          throw new UsageError("replaceNode takes <oldAddr> <newAddr>");
        }
        await client.changeMembers([newUrl], [oldUrl], { probe: !o.set.has("no-probe") });
        await printMembers(client, io);
        return EXIT.OK;
      }
      case "transferleader": {
        if (args.length > 1) throw new UsageError("transferLeader takes at most one <nodeAddr>");
        const to = await client.transferLeader(args[0]);
        io.out(`Leadership transferred to ${to}\n`);
        await printMembers(client, io);
        return EXIT.OK;
      }
      case "restore": {
        const ra = parseRestoreArgs(args);
        if (typeof ra === "string") throw new UsageError(ra);
        return await runReplRestore(address, ra, io, clientSecurityOf(flags), ask, name);
      }
      case "outcome": {
        const o = trailingFormat(args, json);
        if (o.rest.length !== 1) throw new UsageError("outcome takes one request id");
        try {
          validateRequestId(o.rest[0]!);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        return await printRequestOutcome(client, o.rest[0]!, o.json, io);
      }
      case "checkconsistency": {
        if (args.length > 0) throw new UsageError("checkConsistency takes no arguments");
        // Wait for every member's report for up to 15 s (within the -timeout of the call).
        const waitMs = Math.max(1000, Math.min(15_000, int(flags, "timeout")! * 1000 - 2000));
        const res = await client.checkConsistency(waitMs);
        io.out(`Consistency check at index ${res.index}:\n`);
        for (const m of res.members) {
          const word =
            m.verdict === "ok"
              ? "ok"
              : m.verdict === "diverged"
                ? "DIVERGED"
                : m.verdict === "pending"
                  ? "NO REPORT"
                  : "UNDECIDED";
          io.out(`${m.id} => ${m.url} ${m.digest === "" ? "-" : m.digest} ${word}\n`);
        }
        for (const m of res.members) {
          if (m.verdict === "diverged") io.err(`${m.id} diverged: ${m.reason}\n`);
        }
        if (!res.complete) {
          io.err("some members did not report in time: they may be down or behind; retry\n");
        }
        return res.members.every((m) => m.verdict === "ok") ? EXIT.OK : EXIT.FAILED;
      }
      case "redis":
      case "mysql":
      case "sqlite": {
        const store = STORES[cmd]!;
        const [mode, ...rest] = args;
        let reqArgs: Record<string, string> = {};
        let expr: string | undefined;
        if (cmd === "redis") {
          if (rest.length !== 2) {
            throw new UsageError(
              `redis ${mode ?? "<load|save>"} takes db.index=<num> and a Lua expression`,
            );
          }
          reqArgs = scanParams(rest[0]!);
          expr = rest[1];
        } else {
          if (rest.length !== 1) {
            throw new UsageError(
              `${cmd} ${mode ?? "<load|save>"} takes one SQL expression (quote it)`,
            );
          }
          expr = rest[0];
          if (params !== undefined) reqArgs["params"] = params;
        }
        if (consistency !== undefined) reqArgs["consistency"] = consistency;
        if ((mode ?? "").toLowerCase() === "load") Object.assign(reqArgs, readArgs);
        if (expr === undefined || expr === "") throw new UsageError("the expression is empty");
        const m = (mode ?? "").toLowerCase();
        let res: Uint8Array;
        if (m === "load") res = await client.load(enc.encode(expr), reqArgs);
        else if (m === "save") {
          const id = requestId ?? randomUUID();
          try {
            res = await saveOnce(
              client,
              enc.encode(expr),
              reqArgs,
              int(flags, "timeout")! * 1000,
              (rid, err) =>
                io.err(`${name}: no answer for save ${rid} (${err.message}); sending it again\n`),
              id,
            );
          } catch (err) {
            if (!isNexusError(err, "UNKNOWN_OUTCOME") && !isNexusError(err, "UNREACHABLE")) {
              throw err;
            }
            io.err(`${name}: ${describeFailure(err)}\n`);
            io.err(`${name}: find out later with: ${name} ${address} outcome ${id}\n`);
            return exitCodeOf(err.code);
          }
        } else throw new UsageError(`Unknown mode: ${mode ?? ""} (use load or save)`);
        io.out(`Response from ${store} (without quotes): '${dec.decode(res)}'\n`);
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown command "${rawCmd}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`${name}: ${err.message}\n\n${replUsage(name)}`);
      return EXIT.USAGE;
    }
    if (isNexusError(err)) {
      io.err(`${name}: ${describeFailure(err)}\n`);
      return exitCodeOf(err.code);
    }
    throw err;
  } finally {
    client.close();
  }
}

function describeFailure(err: NexusError): string {
  switch (err.code) {
    case "STORE_ERROR":
      return `error from the store: ${err.message}`;
    case "UNKNOWN_OUTCOME":
      return `outcome unknown: ${err.message}`;
    default:
      return `${err.code}: ${err.message}`;
  }
}
