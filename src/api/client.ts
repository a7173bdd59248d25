/**
 * A client of the Nexus gRPC service (the generated client, plus what a program needs around it):
 * the address as the original's repl takes it (`host:port`), a deadline per call, and failures as
 * NexusErrors whose code says what happened (UNREACHABLE, UNKNOWN_OUTCOME, or the server's code).
 */
import { ConnectError, createClient } from "@connectrpc/connect";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";
import { NexusError, NotLeaderError } from "../errors/index.js";
import { isTlsFailure } from "../security/tls.js";
import { callFailureOf } from "./errors.js";
import type { CallKind } from "./errors.js";
import { HealthCheckResponse_ServingStatus, Nexus } from "./gen/nexus_pb.js";
import { NodeInfo_NodeStatus } from "./gen/models/internal_pb.js";
import { NexusAdmin } from "./gen/nexus_admin_pb.js";
import { NexusChecks } from "./gen/nexus_checks_pb.js";
import type { MemberSnapshotProgress } from "../node/replicator.js";

/** A member as ListNodes reports it. */
export interface ListedNode {
  /** 16 hex digits, as the original prints ids. */
  readonly id: string;
  readonly url: string;
  readonly status: "LEADER" | "CANDIDATE" | "FOLLOWER" | "OFFLINE" | "UNKNOWN";
}

export interface NexusClient {
  /** The service's health: SERVING, NOT_SERVING or UNKNOWN. */
  check(): Promise<"SERVING" | "NOT_SERVING" | "UNKNOWN">;
  /** Throws UNKNOWN_OUTCOME when the call was sent but no answer came back. */
  save(data: Uint8Array, args?: Record<string, string>): Promise<Uint8Array>;
  /**
   * save(), also giving the log index the save committed at (the SaveResponse's `index`; for a
   * repeat of a recorded `request-id`, the first commit's; 0 from a server older than that field).
   * A load with the arg `min-index` set to it reads the save on any node.
   */
  saveWithIndex(
    data: Uint8Array,
    args?: Record<string, string>,
  ): Promise<{ data: Uint8Array; index: number }>;
  load(data: Uint8Array, args?: Record<string, string>): Promise<Uint8Array>;
  /** Throws UNKNOWN_OUTCOME when the call was sent but no answer came back. */
  addNode(url: string): Promise<void>;
  /** Throws UNKNOWN_OUTCOME when the call was sent but no answer came back. */
  removeNode(url: string): Promise<void>;
  /** Members sorted by id, and the leader's id ("" when no leader is known). */
  listNodes(): Promise<{ leader: string; nodes: ListedNode[] }>;
  /** Every member with role and, from the leader, progress (NexusAdmin.ListMembers). */
  listMembers(): Promise<{
    leader: string;
    /** The answering node's id. */
    self: string;
    /** A joint change is under way. */
    joint: boolean;
    fromLeader: boolean;
    members: {
      id: string;
      url: string;
      role: string;
      reachable: boolean;
      match: number;
      lag: number;
      /** Set while the leader sends it a snapshot: index, bytes so far, size when known. */
      snapshot?: MemberSnapshotProgress;
    }[];
  }>;
  /**
   * Adds a voter or a learner; with `probe: false` without checking first that its URL answers
   * (a node launched afterwards). Throws UNKNOWN_OUTCOME when no answer came back.
   */
  addMember(url: string, learner: boolean, opts?: { probe?: boolean }): Promise<void>;
  /** Makes a learner a voter (ask the leader); refused while it lags more than maxLagEntries. */
  promoteMember(url: string, opts?: { maxLagEntries?: number }): Promise<void>;
  /** Several changes at once, through joint consensus (a learner in `add` is promoted). */
  changeMembers(add: string[], remove: string[], opts?: { probe?: boolean }): Promise<void>;
  /** Hands leadership to url, or to the most up-to-date voter; resolves with the new leader's URL. */
  transferLeader(url?: string): Promise<string>;
  /** The node's own status: whether it serves and why not, and any divergence found in it. */
  nodeStatus(): Promise<NodeStatusInfo>;
  /** Runs a consistency check now, waiting up to timeoutMs for every member's report. */
  checkConsistency(timeoutMs?: number): Promise<ConsistencyCheckInfo>;
  /**
   * Whether a save with this request-id committed, and with what result (NexusChecks
   * RequestOutcome; Replicator.requestOutcome says what each field means).
   */
  requestOutcome(requestId: string): Promise<RequestOutcomeInfo>;
  /** Closes the connection. */
  close(): void;
}

/** A request id's outcome as NexusChecks.RequestOutcome reports it. */
export type RequestOutcomeInfo =
  | {
      readonly committed: true;
      readonly index: number;
      readonly result:
        | { readonly ok: true; readonly data: Uint8Array }
        | { readonly ok: false; readonly error: string };
      readonly appliedIndex: number;
    }
  | { readonly committed: false; readonly appliedIndex: number };

/** A node's status as NexusChecks.NodeStatus reports it. */
export interface NodeStatusInfo {
  readonly serving: boolean;
  readonly reason: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string;
  readonly commit: number;
  readonly applied: number;
  /** The index of the check that found this replica diverged, or undefined. */
  readonly divergedAt: number | undefined;
  readonly divergedReason: string;
  /** The version of nexus-raft the node runs; "" from a node that does not say. */
  readonly version: string;
}

/** The result of NexusChecks.CheckConsistency. */
export interface ConsistencyCheckInfo {
  readonly index: number;
  readonly complete: boolean;
  readonly members: readonly {
    readonly id: string;
    readonly url: string;
    readonly digest: string;
    readonly verdict: string;
    readonly reason: string;
  }[];
}

export interface ClientOptions {
  /** Deadline of each call, ms. Default 30,000. */
  readonly timeoutMs?: number;
  /**
   * Connect with TLS: `ca` the CA certificate(s) (PEM) the server's certificate must be signed by
   * (default: the system's), `cert` and `key` a client certificate for servers that require one.
   * An `https://` address uses TLS too.
   */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** Sent as `authorization: Bearer <token>` with every call. */
  readonly token?: string;
}

/**
 * Parses `host:port`, `[v6]:port`, `http://host:port` or `https://host:port` into a base URL,
 * https with `tls`. Throws INVALID_ARGUMENT.
 */
export function parseServiceAddress(address: string, tls = false): string {
  const a = address.trim();
  const withScheme = /^[a-z]+:\/\//i.test(a) ? a : `${tls ? "https" : "http"}://${a}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `"${address}" is not an address; use host:port, e.g. 127.0.0.1:9121`,
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `"${address}": use host:port (https://host:port or TLS options for TLS)`,
    );
  }
  if (u.protocol === "http:" && tls) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `"${address}" says http:// but TLS options are given; use host:port or https://host:port`,
    );
  }
  const port = Number(u.port);
  if (u.port === "" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new NexusError(
      "INVALID_ARGUMENT",
      `"${address}" has no valid port; use host:port, e.g. 127.0.0.1:9121`,
    );
  }
  if (u.pathname !== "/" || u.search !== "" || u.username !== "") {
    throw new NexusError("INVALID_ARGUMENT", `"${address}": give only host:port`);
  }
  return `${u.protocol}//${u.host}`;
}

const hex = (id: bigint): string => id.toString(16).padStart(16, "0");

/**
 * The gRPC transport every client of the service uses: one HTTP/2 session to `baseUrl` (TLS with
 * `opts.tls`), and the bearer token on every call when `opts.token` is given.
 */
export function grpcTransportOf(
  baseUrl: string,
  opts: Pick<ClientOptions, "tls" | "token">,
): { transport: Transport; sessions: Http2SessionManager } {
  const t = opts.tls;
  const sessions = new Http2SessionManager(
    baseUrl,
    undefined,
    t === undefined
      ? undefined
      : {
          ...(t.ca === undefined ? {} : { ca: t.ca }),
          ...(t.cert === undefined ? {} : { cert: t.cert }),
          ...(t.key === undefined ? {} : { key: t.key }),
        },
  );
  const token = opts.token;
  const interceptors: Interceptor[] =
    token === undefined
      ? []
      : [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ];
  return {
    transport: createGrpcTransport({ baseUrl, sessionManager: sessions, interceptors }),
    sessions,
  };
}

/** Connects lazily to the service at `address` (`host:port`). */
export function createNexusClient(address: string, opts: ClientOptions = {}): NexusClient {
  const baseUrl = parseServiceAddress(address, opts.tls !== undefined);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const { transport, sessions } = grpcTransportOf(baseUrl, opts);
  const client = createClient(Nexus, transport);
  const admin = createClient(NexusAdmin, transport);
  const checks = createClient(NexusChecks, transport);
  const where = baseUrl.replace(/^https?:\/\//, "");

  /**
   * A failure as a NexusError, with the code src/api/errors.ts reads from it (the server's
   * ErrorInfo, else the status's gRPC code, else the client library's own failure) and a message
   * that says what to do.
   */
  const fail = (err: unknown, what: string, kind: CallKind): NexusError => {
    if (!(err instanceof ConnectError)) {
      return new NexusError("INTERNAL", `${what}: ${(err as Error).message}`, { cause: err });
    }
    const f = callFailureOf(err, kind);
    const cause = { cause: err };
    if (f.from === "detail") {
      return f.code === "NOT_LEADER"
        ? new NotLeaderError(err.rawMessage, f.leaderUrl, cause)
        : new NexusError(f.code, err.rawMessage, cause);
    }
    if (f.from === "not-connected" && isTlsFailure(err.cause)) {
      return new NexusError(
        "UNREACHABLE",
        `the TLS handshake with ${where} failed (${err.rawMessage}); check that the server's ` +
          "certificate is signed by the CA given (-cacert) and names this address, and whether " +
          "the server requires a client certificate (-cert, -key)",
        cause,
      );
    }
    if (f.from === "not-connected") {
      const port = baseUrl.split(":").pop();
      return new NexusError(
        "UNREACHABLE",
        `cannot reach the Nexus service at ${where} (${err.rawMessage}); is a node running there with -grpcPort ${port}?`,
        cause,
      );
    }
    if (f.code === "UNKNOWN_OUTCOME") {
      const why =
        f.from === "status"
          ? `${where} answered ${err.rawMessage === "" ? "an error" : `"${err.rawMessage}"`} without saying whether it was applied`
          : `no answer came back from ${where} (${err.rawMessage})`;
      return new NexusError(
        "UNKNOWN_OUTCOME",
        `${what} was sent but ${why}: it may or may not have been applied; ` +
          "check the state (a load, or listNodes) before retrying",
        cause,
      );
    }
    if (f.code === "TIMEOUT" && f.from === "client") {
      return new NexusError(
        "TIMEOUT",
        `${what}: no answer from ${where} within ${timeoutMs} ms`,
        cause,
      );
    }
    return new NexusError(f.code, `${what} at ${where} failed: ${err.rawMessage}`, cause);
  };
  const call = async <T>(what: string, kind: CallKind, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw fail(err, what, kind);
    }
  };
  const bytesArgs = (args: Record<string, string> = {}): Record<string, Uint8Array> => {
    const enc = new TextEncoder();
    return Object.fromEntries(Object.entries(args).map(([k, v]) => [k, enc.encode(v)]));
  };
  const saveWithIndex = (
    data: Uint8Array,
    args?: Record<string, string>,
  ): Promise<{ data: Uint8Array; index: number }> =>
    call("the save", "write", async () => {
      const r = await client.save({ data, args: bytesArgs(args) }, { timeoutMs });
      if (r.status !== undefined && r.status.code !== 0) {
        throw new NexusError("STORE_ERROR", r.status.message);
      }
      return { data: r.resData, index: Number(r.index) };
    });

  return {
    check: () =>
      call("check", "read", async () => {
        const r = await client.check({}, { timeoutMs });
        return r.status === HealthCheckResponse_ServingStatus.SERVING
          ? "SERVING"
          : r.status === HealthCheckResponse_ServingStatus.NOT_SERVING
            ? "NOT_SERVING"
            : "UNKNOWN";
      }),
    saveWithIndex,
    save: async (data, args) => (await saveWithIndex(data, args)).data,
    load: (data, args) =>
      call("the load", "read", async () => {
        const r = await client.load({ data, args: bytesArgs(args) }, { timeoutMs });
        if (r.status !== undefined && r.status.code !== 0) {
          throw new NexusError("STORE_ERROR", r.status.message);
        }
        return r.resData;
      }),
    addNode: (url) =>
      call(`addNode ${url}`, "membership", async () => {
        const r = await client.addNode({ nodeUrl: url }, { timeoutMs });
        if (r.code !== 0) throw new NexusError("MEMBERSHIP_REFUSED", r.message);
      }),
    removeNode: (url) =>
      call(`removeNode ${url}`, "membership", async () => {
        const r = await client.removeNode({ nodeUrl: url }, { timeoutMs });
        if (r.code !== 0) throw new NexusError("MEMBERSHIP_REFUSED", r.message);
      }),
    listNodes: () =>
      call("listNodes", "read", async () => {
        const r = await client.listNodes({}, { timeoutMs });
        const nodes = Object.values(r.nodes)
          .map((n) => ({
            id: hex(n.nodeId),
            url: n.nodeUrl,
            status: NodeInfo_NodeStatus[n.status] as ListedNode["status"],
          }))
          .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        return { leader: r.leader === 0n ? "" : hex(r.leader), nodes };
      }),
    listMembers: () =>
      call("listMembers", "read", async () => {
        const r = await admin.listMembers({}, { timeoutMs });
        return {
          leader: r.leader,
          self: r.self,
          joint: r.joint,
          fromLeader: r.fromLeader,
          members: r.members
            .map((m) => ({
              id: m.id,
              url: m.url,
              role: m.role,
              reachable: m.reachable,
              match: Number(m.match),
              lag: Number(m.lag),
              ...(m.snapshot === undefined
                ? {}
                : {
                    snapshot: {
                      index: Number(m.snapshot.index),
                      bytes: Number(m.snapshot.bytes),
                      ...(m.snapshot.totalBytes < 0n
                        ? {}
                        : { totalBytes: Number(m.snapshot.totalBytes) }),
                    },
                  }),
            }))
            .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
        };
      }),
    addMember: (url, learner, o = {}) =>
      call(`addNode ${url}`, "membership", async () => {
        await admin.addMember({ nodeUrl: url, learner, noProbe: o.probe === false }, { timeoutMs });
      }),
    promoteMember: (url, o = {}) =>
      call(`promoteNode ${url}`, "membership", async () => {
        await admin.promoteMember(
          {
            nodeUrl: url,
            ...(o.maxLagEntries === undefined ? {} : { maxLagEntries: BigInt(o.maxLagEntries) }),
          },
          { timeoutMs },
        );
      }),
    changeMembers: (add, remove, o = {}) =>
      call("the membership change", "membership", async () => {
        await admin.changeMembers(
          { addUrls: add, removeUrls: remove, noProbe: o.probe === false },
          { timeoutMs },
        );
      }),
    transferLeader: (url) =>
      call("transferLeader", "membership", async () => {
        const r = await admin.transferLeader({ nodeUrl: url ?? "" }, { timeoutMs });
        return r.leaderUrl;
      }),
    nodeStatus: () =>
      call("nodeStatus", "read", async () => {
        const r = await checks.nodeStatus({}, { timeoutMs });
        return {
          serving: r.serving,
          reason: r.reason,
          role: r.role,
          term: Number(r.term),
          leader: r.leader,
          commit: Number(r.commit),
          applied: Number(r.applied),
          divergedAt: r.divergedAt < 0n ? undefined : Number(r.divergedAt),
          divergedReason: r.divergedReason,
          version: r.version,
        };
      }),
    checkConsistency: (waitMs = 10_000) =>
      call("checkConsistency", "read", async () => {
        const r = await checks.checkConsistency(
          { timeoutMs: waitMs },
          { timeoutMs: Math.max(timeoutMs, waitMs + 5000) },
        );
        return {
          index: Number(r.index),
          complete: r.complete,
          members: r.members.map((m) => ({
            id: m.id,
            url: m.url,
            digest: m.digest,
            verdict: m.verdict,
            reason: m.reason,
          })),
        };
      }),
    requestOutcome: (requestId) =>
      call("the outcome of a request", "read", async () => {
        const r = await checks.requestOutcome({ requestId }, { timeoutMs });
        const appliedIndex = Number(r.appliedIndex);
        if (!r.committed) return { committed: false, appliedIndex };
        return {
          committed: true,
          index: Number(r.index),
          result: r.ok ? { ok: true, data: r.resData } : { ok: false, error: r.error },
          appliedIndex,
        };
      }),
    close: () => sessions.abort(),
  };
}
