/**
 * The state and commands behind the golden interaction scripts (see interaction.test.ts for the
 * language). A set of RawNodes with MemoryStorages; messages wait in per-node inboxes until a
 * script delivers them, so every step of a scenario is explicit and shows in the output, which
 * comes from the describe* functions of src/raft/describe.ts.
 */
import { decodeConfChange } from "../../src/raft/confchange/codec.js";
import {
  describeConfState,
  describeEntry,
  describeHardState,
  describeMessage,
  describeReady,
  describeSnapshot,
  describeSoftState,
  describeStatus,
} from "../../src/raft/describe.js";
import { RaftError } from "../../src/raft/raft.js";
import type { RaftLogger } from "../../src/raft/raft.js";
import type { ReadOnlyOption } from "../../src/raft/read-only.js";
import { RawNode } from "../../src/raft/raw-node.js";
import { MemoryStorage } from "../../src/raft/storage.js";
import type { ConfChangeTransition, ConfState, Message, NodeId } from "../../src/raft/types.js";
import { EMPTY_BYTES } from "../../src/raft/types.js";
import { confChange, enc } from "./helpers.js";

/** A parsed script command: `name pos1 pos2 key=value key=(a,b)`. */
export interface Command {
  readonly name: string;
  readonly positional: readonly string[];
  readonly keys: ReadonlyMap<string, string>;
  /** 1-based line of the command in its file. */
  readonly line: number;
}

/** Parses one command line. Values in parentheses are lists: `(1,2,3)`. */
export function parseCommand(text: string, line: number): Command {
  const tokens = text.trim().split(/\s+/);
  const name = tokens.shift() ?? "";
  const positional: string[] = [];
  const keys = new Map<string, string>();
  for (const t of tokens) {
    const eq = t.indexOf("=");
    if (eq > 0) keys.set(t.slice(0, eq), t.slice(eq + 1));
    else positional.push(t);
  }
  return { name, positional, keys, line };
}

type LogLevel = "debug" | "info" | "warn" | "none";
const LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "none"];

interface EnvNode {
  readonly id: NodeId;
  node: RawNode;
  readonly storage: MemoryStorage;
  readonly opts: NodeOptions;
  /** Messages addressed to this node, waiting for deliver-msgs. */
  inbox: Message[];
}

interface NodeOptions {
  readonly electionTick: number;
  readonly heartbeatTick: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readOnlyOption: ReadOnlyOption;
  readonly maxInflightMsgs: number;
  readonly maxSizePerMsg: number;
  readonly disableProposalForwarding: boolean;
}

/** Thrown for a malformed script command (a bug in the script, not in the core). */
export class ScriptError extends Error {}

function list(v: string | undefined): NodeId[] {
  if (v === undefined) return [];
  if (!v.startsWith("(") || !v.endsWith(")"))
    throw new ScriptError(`expected a list (a,b), got ${v}`);
  return v
    .slice(1, -1)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function bool(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (v === "true") return true;
  if (v === "false") return false;
  throw new ScriptError(`expected true or false, got ${v}`);
}

function int(v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new ScriptError(`expected an integer, got ${v}`);
  return n;
}

export class InteractionEnv {
  private readonly nodes = new Map<NodeId, EnvNode>();
  /** Links cut by isolate/partition: "from->to". */
  private readonly cut = new Set<string>();
  private level: LogLevel = "none";
  /** Output lines of the command being run. */
  private out: string[] = [];

  /** Runs one command and returns its output lines (never empty: "ok" at least). */
  run(cmd: Command): string[] {
    this.out = [];
    const allowed = this.handlers[cmd.name];
    if (allowed === undefined) throw new ScriptError(`unknown command ${cmd.name}`);
    for (const k of cmd.keys.keys()) {
      if (!allowed.keys.includes(k)) {
        throw new ScriptError(
          `${cmd.name}: unknown key ${k} (allowed: ${allowed.keys.join(", ")})`,
        );
      }
    }
    allowed.run(cmd);
    return this.out.length > 0 ? this.out : ["ok"];
  }

  private readonly handlers: Record<string, { keys: string[]; run: (c: Command) => void }> = {
    "add-nodes": {
      keys: [
        "voters",
        "learners",
        "index",
        "prevote",
        "checkquorum",
        "read-only",
        "max-inflight",
        "max-size",
        "election",
        "heartbeat",
        "forwarding",
      ],
      run: (c) => this.addNodes(c),
    },
    campaign: { keys: [], run: (c) => this.each(c, (n) => this.guard(() => n.node.campaign())) },
    propose: {
      keys: [],
      run: (c) => {
        const [id, data] = c.positional;
        const n = this.get(id);
        this.guard(() => n.node.propose(enc(data ?? "")));
      },
    },
    "propose-conf-change": {
      keys: ["transition"],
      run: (c) => {
        const [id, ...spec] = c.positional;
        const n = this.get(id);
        const t = (c.keys.get("transition") ?? "auto") as ConfChangeTransition;
        if (!["auto", "implicit", "explicit"].includes(t))
          throw new ScriptError(`bad transition ${t}`);
        this.guard(() => n.node.proposeConfChange(confChange(spec.join(" "), t)));
      },
    },
    "read-index": {
      keys: [],
      run: (c) => {
        const [id, ctx] = c.positional;
        const n = this.get(id);
        this.guard(() => n.node.readIndex(enc(ctx ?? "")));
      },
    },
    "transfer-leadership": {
      keys: [],
      run: (c) => {
        const [id, to] = c.positional;
        const n = this.get(id);
        if (to === undefined) throw new ScriptError("transfer-leadership <from> <to>");
        this.guard(() => n.node.transferLeadership(to));
      },
    },
    tick: {
      keys: ["n"],
      run: (c) => this.each(c, (n) => this.tick(n, int(c.keys.get("n"), 1))),
    },
    "tick-heartbeat": {
      keys: [],
      run: (c) => this.each(c, (n) => this.tick(n, n.opts.heartbeatTick)),
    },
    "tick-election": {
      keys: [],
      run: (c) => this.each(c, (n) => this.tick(n, n.opts.electionTick)),
    },
    "process-ready": { keys: [], run: (c) => this.each(c, (n) => this.processReady(n, false)) },
    "deliver-msgs": {
      keys: ["drop", "type"],
      run: (c) => {
        const drop = bool(c.keys.get("drop"), false);
        const type = c.keys.get("type");
        const targets =
          c.positional.length > 0 ? c.positional.map((id) => this.get(id)) : this.all();
        let any = false;
        for (const n of targets) if (this.deliver(n, drop, type, false)) any = true;
        if (!any) this.out.push("no messages");
      },
    },
    stabilize: {
      keys: [],
      run: (c) =>
        this.stabilize(
          c.positional.length > 0 ? c.positional.map((id) => this.get(id)) : this.all(),
        ),
    },
    isolate: {
      keys: [],
      run: (c) => {
        for (const id of c.positional) {
          this.get(id);
          for (const other of this.nodes.keys()) {
            if (other === id) continue;
            this.cut.add(`${id}->${other}`);
            this.cut.add(`${other}->${id}`);
          }
        }
      },
    },
    "cut-link": {
      keys: [],
      run: (c) => {
        const [a, b] = c.positional;
        if (a === undefined || b === undefined) throw new ScriptError("cut-link <a> <b>");
        this.cut.add(`${a}->${b}`);
        this.cut.add(`${b}->${a}`);
      },
    },
    heal: { keys: [], run: () => this.cut.clear() },
    status: {
      keys: [],
      run: (c) => this.each(c, (n) => this.out.push(...describeStatus(n.node.status()))),
    },
    "raft-state": {
      keys: [],
      run: () => {
        for (const n of this.all()) {
          const st = n.node.status();
          this.out.push(
            `${n.id}: ${describeSoftState(st.softState)} ${describeHardState(st.hardState)}`,
          );
        }
      },
    },
    "raft-log": {
      keys: [],
      run: (c) =>
        this.each(c, (n) => {
          const log = n.node.raft.raftLog;
          this.out.push(
            `${n.id}: first=${log.firstIndex()} last=${log.lastIndex()} committed=${log.committed} applied=${log.applied}`,
          );
          for (const e of log.allEntries()) this.out.push(`  ${describeEntry(e)}`);
        }),
    },
    compact: {
      keys: [],
      run: (c) => {
        const [id, at] = c.positional;
        const n = this.get(id);
        const index = int(at, 0);
        const snap = n.storage.createSnapshot(index, n.node.status().config, enc(`snap@${index}`));
        n.storage.compact(index);
        this.out.push(`${n.id}: snapshot ${describeSnapshot(snap)}`);
      },
    },
    "report-unreachable": {
      keys: [],
      run: (c) => {
        const [id, peer] = c.positional;
        if (peer === undefined) throw new ScriptError("report-unreachable <id> <peer>");
        this.get(id).node.reportUnreachable(peer);
      },
    },
    "report-snapshot": {
      keys: [],
      run: (c) => {
        const [id, peer, status] = c.positional;
        if (peer === undefined || (status !== "finish" && status !== "failure")) {
          throw new ScriptError("report-snapshot <id> <peer> finish|failure");
        }
        this.get(id).node.reportSnapshot(peer, status);
      },
    },
    restart: {
      keys: [],
      run: (c) =>
        this.each(c, (n) => {
          // The state machine restarts from the snapshot and re-applies what follows it.
          n.node = this.newRawNode(n.id, n.storage, n.opts, n.storage.firstIndex() - 1);
          n.inbox = [];
          this.out.push(...describeStatus(n.node.status()));
        }),
    },
    "log-level": {
      keys: [],
      run: (c) => {
        const l = c.positional[0] as LogLevel;
        if (!LEVELS.includes(l)) throw new ScriptError(`log-level ${LEVELS.join("|")}`);
        this.level = l;
      },
    },
  };

  private get(id: string | undefined): EnvNode {
    const n = id === undefined ? undefined : this.nodes.get(id);
    if (n === undefined) throw new ScriptError(`no node ${String(id)}`);
    return n;
  }

  private all(): EnvNode[] {
    return [...this.nodes.keys()].sort(byId).map((id) => this.nodes.get(id)!);
  }

  /** Runs fn for each node named in the command (at least one). */
  private each(c: Command, fn: (n: EnvNode) => void): void {
    if (c.positional.length === 0) throw new ScriptError(`${c.name} needs node ids`);
    for (const id of c.positional) fn(this.get(id));
  }

  /** Runs an input; a RaftError is part of the output, any other error fails the script. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.out.push(`error: ${e.code}: ${e.message}`);
    }
  }

  private logger(id: NodeId): RaftLogger {
    const at = (lvl: LogLevel, tag: string) => (msg: string) => {
      if (LEVELS.indexOf(lvl) >= LEVELS.indexOf(this.level)) this.out.push(`${tag} ${id}: ${msg}`);
    };
    return { debug: at("debug", "DEBUG"), info: at("info", "INFO"), warn: at("warn", "WARN") };
  }

  private newRawNode(id: NodeId, storage: MemoryStorage, o: NodeOptions, applied: number): RawNode {
    return new RawNode({
      id,
      storage,
      applied,
      electionTick: o.electionTick,
      heartbeatTick: o.heartbeatTick,
      preVote: o.preVote,
      checkQuorum: o.checkQuorum,
      readOnlyOption: o.readOnlyOption,
      maxInflightMsgs: o.maxInflightMsgs,
      maxSizePerMsg: o.maxSizePerMsg,
      disableProposalForwarding: o.disableProposalForwarding,
      // Election timeouts are exactly electionTick: scripts say who times out first.
      random: () => 0,
      logger: this.logger(id),
    });
  }

  private addNodes(c: Command): void {
    const count = int(c.positional[0], 1);
    const voters = list(c.keys.get("voters"));
    const learners = list(c.keys.get("learners"));
    const index = int(c.keys.get("index"), 0);
    const opts: NodeOptions = {
      electionTick: int(c.keys.get("election"), 10),
      heartbeatTick: int(c.keys.get("heartbeat"), 1),
      preVote: bool(c.keys.get("prevote"), false),
      checkQuorum: bool(c.keys.get("checkquorum"), false),
      readOnlyOption: (c.keys.get("read-only") ?? "safe") as ReadOnlyOption,
      maxInflightMsgs: int(c.keys.get("max-inflight"), 256),
      maxSizePerMsg: int(c.keys.get("max-size"), 1024 * 1024),
      disableProposalForwarding: !bool(c.keys.get("forwarding"), true),
    };
    const cs: ConfState = {
      voters,
      learners,
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    };
    for (let i = 0; i < count; i++) {
      const id = String(this.nodes.size + 1);
      let storage: MemoryStorage;
      if (index > 0) {
        storage = new MemoryStorage();
        storage.applySnapshot({ metadata: { index, term: 1, confState: cs }, data: EMPTY_BYTES });
      } else {
        storage = MemoryStorage.withConfState(cs);
      }
      const node = this.newRawNode(id, storage, opts, index);
      this.nodes.set(id, { id, node, storage, opts, inbox: [] });
      this.out.push(...describeStatus(node.status()));
    }
  }

  private tick(n: EnvNode, times: number): void {
    for (let i = 0; i < times; i++) n.node.tick();
  }

  /** Handles one Ready of n; returns whether there was one. */
  private processReady(n: EnvNode, quietIfNone: boolean): boolean {
    if (!n.node.hasReady()) {
      if (!quietIfNone) this.out.push(`> ${n.id}: no Ready`);
      return false;
    }
    this.out.push(`> ${n.id} handling Ready`);
    const mark = this.out.length;
    const rd = n.node.ready();
    for (const line of describeReady(rd)) this.out.push(`  ${line}`);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    for (const e of rd.committedEntries) {
      if (e.type !== "conf-change") continue;
      const cs = n.node.applyConfChange(decodeConfChange(e.data));
      this.out.push(`  applied conf change ${e.index}: ${describeConfState(cs)}`);
    }
    for (const m of [...rd.messages, ...rd.persistedMessages]) {
      const to = this.nodes.get(m.to);
      if (to !== undefined) to.inbox.push(m);
    }
    n.node.advance(rd);
    // Log lines produced while advancing stay under the Ready.
    for (let i = mark; i < this.out.length; i++) {
      const line = this.out[i]!;
      if (!line.startsWith("  ")) this.out[i] = `  ${line}`;
    }
    return true;
  }

  /** Delivers (or drops) n's inbox, optionally only messages of one type. */
  private deliver(n: EnvNode, drop: boolean, type: string | undefined, header: boolean): boolean {
    const take = n.inbox.filter((m) => type === undefined || m.type === type);
    if (take.length === 0) return false;
    n.inbox = n.inbox.filter((m) => !take.includes(m));
    if (header) this.out.push(`> ${n.id} receiving messages`);
    const pad = header ? "  " : "";
    for (const m of take) {
      if (drop) {
        this.out.push(`${pad}dropped: ${describeMessage(m)}`);
        continue;
      }
      if (this.cut.has(`${m.from}->${m.to}`)) {
        this.out.push(`${pad}dropped (partition): ${describeMessage(m)}`);
        continue;
      }
      this.out.push(`${pad}${describeMessage(m)}`);
      const mark = this.out.length;
      this.guard(() => n.node.step(m));
      for (let i = mark; i < this.out.length; i++) this.out[i] = `${pad}  ${this.out[i]!}`;
    }
    return true;
  }

  /** Handles Readies and delivers messages among the given nodes until nothing is left. */
  private stabilize(nodes: EnvNode[]): void {
    for (let round = 0; round < 1000; round++) {
      let progressed = false;
      for (const n of nodes) if (this.processReady(n, true)) progressed = true;
      for (const n of nodes) if (this.deliver(n, false, undefined, true)) progressed = true;
      if (!progressed) return;
    }
    throw new ScriptError("stabilize did not converge in 1000 rounds");
  }
}

function byId(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}
