/**
 * One key-value client interface over both systems' gRPC APIs, with the same client library
 * (@grpc/grpc-js, definitions loaded at run time with @grpc/proto-loader): etcd's KV Put/Range and
 * Nexus's Save/Load. One channel per server node, shared by the benchmark's clients of that node,
 * as an application with many concurrent requests would.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { NexusStoreKind } from "./clusters.js";
import { ROOT } from "./clusters.js";

/** linearizable: a quorum-confirmed read; lease: Nexus's leader lease (ReadIndex on followers). */
export type ReadMode = "linearizable" | "lease";

export interface KvClient {
  /** Server nodes that can be addressed: 0 .. nodes-1. */
  readonly nodes: number;
  /** Writes `value` under `key` through node `node`. */
  put(node: number, key: string, value: Buffer): Promise<void>;
  /** Reads `key` through node `node`. */
  get(node: number, key: string, mode: ReadMode): Promise<void>;
  /** Whether the system can serve reads in `mode` at all. */
  supports(mode: ReadMode): boolean;
  close(): void;
}

const DEADLINE_MS = 10_000;

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type Unary = (req: unknown, opts: grpc.CallOptions, cb: Callback) => void;
type Stub = grpc.Client & Record<string, Unary>;
type StubClass = new (addr: string, creds: grpc.ChannelCredentials) => Stub;

function load(file: string): grpc.GrpcObject {
  const def = protoLoader.loadSync(file, {
    includeDirs: [join(ROOT, "proto")],
    longs: String,
    enums: String,
    defaults: false,
  });
  return grpc.loadPackageDefinition(def);
}

function serviceOf(pkg: grpc.GrpcObject, path: readonly string[]): StubClass {
  let o: unknown = pkg;
  for (const p of path) o = (o as Record<string, unknown>)[p];
  return o as StubClass;
}

/** Calls `method` on `stub`; resolves with the response, rejects with the gRPC error. */
function unary(stub: Stub, method: string, req: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    stub[method]!.call(stub, req, { deadline: Date.now() + DEADLINE_MS }, (err, res) =>
      err === null ? resolve(res) : reject(err),
    );
  });
}

function stubsOf(cls: StubClass, addrs: readonly string[]): Stub[] {
  return addrs.map((a) => new cls(a, grpc.credentials.createInsecure()));
}

/** A client of etcd's KV service. */
export function etcdClient(addrs: readonly string[]): KvClient {
  const stubs = stubsOf(
    serviceOf(load(join(ROOT, "bench", "lib", "etcd-kv.proto")), ["etcdserverpb", "KV"]),
    addrs,
  );
  const enc = (s: string): Buffer => Buffer.from(s);
  return {
    nodes: stubs.length,
    put: async (node, key, value) => {
      await unary(stubs[node]!, "Put", { key: enc(key), value });
    },
    get: async (node, key) => {
      await unary(stubs[node]!, "Range", { key: enc(key), serializable: false });
    },
    supports: (mode) => mode === "linearizable",
    close: () => stubs.forEach((s) => s.close()),
  };
}

/** The Nexus statements of a key-value put and get on each store. */
const STATEMENTS: Record<
  NexusStoreKind,
  {
    setup: string | undefined;
    put: (key: string, value: Buffer) => { data: Buffer; args: Record<string, Buffer> };
    get: (key: string) => { data: Buffer; args: Record<string, Buffer> };
  }
> = {
  memory: {
    setup: undefined,
    put: (key, value) => ({
      data: Buffer.concat([Buffer.from(`set ${key} `), value]),
      args: {},
    }),
    get: (key) => ({ data: Buffer.from(`get ${key}`), args: {} }),
  },
  sqlite: {
    setup: "create table if not exists kv (k text primary key, v text)",
    put: (key, value) => ({
      data: Buffer.from("insert or replace into kv (k, v) values (?, ?)"),
      args: { params: Buffer.from(JSON.stringify([key, value.toString("latin1")])) },
    }),
    get: (key) => ({
      data: Buffer.from("select v from kv where k = ?"),
      args: { params: Buffer.from(JSON.stringify([key])) },
    }),
  },
};

/** A client of Nexus's nexus.api.Nexus service on a cluster of `store` nodes. */
export function nexusClient(
  addrs: readonly string[],
  store: NexusStoreKind,
): KvClient & {
  /** Runs the store's setup statement (e.g. create table) once; no-op for the memory store. */
  setup(): Promise<void>;
  /** The leader's peer URL as node `node` knows it ("" when it knows none). */
  leaderUrl(node: number): Promise<string>;
} {
  const stubs = stubsOf(
    serviceOf(load(join(ROOT, "proto", "nexus.proto")), ["nexus", "api", "Nexus"]),
    addrs,
  );
  const st = STATEMENTS[store];
  return {
    nodes: stubs.length,
    setup: async () => {
      if (st.setup !== undefined) await unary(stubs[0]!, "save", { data: Buffer.from(st.setup) });
    },
    put: async (node, key, value) => {
      await unary(stubs[node]!, "save", st.put(key, value));
    },
    get: async (node, key, mode) => {
      const req = st.get(key);
      await unary(stubs[node]!, "load", {
        data: req.data,
        args: { ...req.args, consistency: Buffer.from(mode) },
      });
    },
    leaderUrl: async (node) => {
      const res = (await unary(stubs[node]!, "listNodes", {})) as {
        leader?: string;
        nodes?: Record<string, { nodeUrl: string; nodeId?: string }>;
      };
      // By each node's nodeId field: protobufjs garbles the map's uint64 keys.
      const leader = Object.values(res.nodes ?? {}).find((n) => n.nodeId === res.leader);
      return res.leader === undefined ? "" : (leader?.nodeUrl ?? "");
    },
    supports: () => true,
    close: () => stubs.forEach((s) => s.close()),
  };
}

/** Retries `f` until it succeeds or `timeoutMs` passes (a cluster electing its first leader). */
export async function retryUntil(
  what: string,
  f: () => Promise<unknown>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await f();
      return;
    } catch (err) {
      if (Date.now() > deadline) {
        throw new Error(`${what} did not succeed in ${timeoutMs} ms: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Waits until a write succeeds through every node (a leader is elected and known to all). */
export async function waitWritable(c: KvClient): Promise<void> {
  for (let n = 0; n < c.nodes; n++) {
    await retryUntil(`a write through node ${n}`, () => c.put(n, "ready", Buffer.from("x")));
  }
}
