/**
 * The gRPC service `nexus.api.Nexus` (proto/nexus.proto, wire-compatible with the original),
 * implemented over a Replicator.
 */
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { NexusError } from "../errors/index.js";
import type { Replicator, ReadConsistency } from "../node/replicator.js";
import { writeTrace } from "../node/write-trace.js";
import { staleBoundOfArgs } from "../node/bounded-read.js";
import { Nexus, HealthCheckResponse_ServingStatus } from "./gen/nexus_pb.js";
import { NexusAdmin } from "./gen/nexus_admin_pb.js";
import { NodeInfo_NodeStatus } from "./gen/models/internal_pb.js";
import { toConnectError } from "./errors.js";
import { minIndexOf } from "./request-args.js";
import { checksRoutes } from "./checks-service.js";
import { backupRoutes } from "./backup-service.js";
import { healthRoutes } from "./health-service.js";
import type { UnaryRoute } from "./unary-stream.js";
import { unaryRoute } from "./unary-stream.js";

export interface ServiceOptions {
  /** Largest request (data plus args) accepted, bytes. */
  readonly maxRequestBytes: number;
  /** The version the node runs, answered by NexusChecks.NodeStatus. Default "". */
  readonly version?: string;
}

const dec = new TextDecoder("utf-8", { fatal: true });

/** Request args as strings (the original sends bytes). Throws INVALID_ARGUMENT if not UTF-8. */
function argsOf(args: { [k: string]: Uint8Array }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(args)) {
    try {
      out[k] = dec.decode(v);
    } catch {
      throw new NexusError("INVALID_ARGUMENT", `request arg "${k}" is not UTF-8 text`);
    }
  }
  return out;
}

/** The request args that name a client's request (src/store/request-records.ts). */
export const REQUEST_ID_ARG = "request-id";
export const REQUEST_ISSUED_AT_ARG = "request-issued-at";

/**
 * Splits `request-id` and `request-issued-at` (ms since the epoch, decimal; default now) off a
 * save's args: they name the request, they are not the store's.
 */
export function requestOf(all: Record<string, string>): {
  args: Record<string, string>;
  request?: { requestId: string; issuedAtMs: number };
} {
  const { [REQUEST_ID_ARG]: id, [REQUEST_ISSUED_AT_ARG]: at, ...args } = all;
  if (id === undefined) {
    if (at !== undefined) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `request arg ${REQUEST_ISSUED_AT_ARG} needs ${REQUEST_ID_ARG} too`,
      );
    }
    return { args };
  }
  let issuedAtMs = Date.now();
  if (at !== undefined) {
    if (!/^\d{1,16}$/.test(at)) {
      throw new NexusError(
        "INVALID_ARGUMENT",
        `request arg ${REQUEST_ISSUED_AT_ARG} must be ms since the epoch in decimal, got "${at.slice(0, 40)}"`,
      );
    }
    issuedAtMs = Number(at);
  }
  return { args, request: { requestId: id, issuedAtMs } };
}

function checkSize(data: Uint8Array, args: { [k: string]: Uint8Array }, max: number): void {
  let n = data.byteLength;
  for (const [k, v] of Object.entries(args)) n += k.length + v.byteLength;
  if (n > max) {
    throw new NexusError("TOO_LARGE", `request of ${n} bytes exceeds the limit of ${max} bytes`);
  }
}

const CONSISTENCIES: readonly ReadConsistency[] = ["linearizable", "lease", "local", "bounded"];

const OK = { code: 0, message: "" };

/** Wraps a handler so that every failure is a gRPC status (src/api/errors.ts). */
function guarded<A extends unknown[], R>(f: (...a: A) => Promise<R> | R): (...a: A) => Promise<R> {
  return async (...a) => {
    try {
      return await f(...a);
    } catch (err) {
      throw toConnectError(err);
    }
  };
}

/** A request's optional maxLagEntries as an option. Throws INVALID_ARGUMENT when out of range. */
function maxLagOf(v: bigint | undefined): { maxLagEntries?: number } {
  if (v === undefined) return {};
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NexusError("INVALID_ARGUMENT", `maxLagEntries must be >= 0, got ${v}`);
  }
  return { maxLagEntries: Number(v) };
}

/** Registers the NexusAdmin service (membership administration) on a Connect router. */
function adminRoutes(r: Replicator, router: ConnectRouter): void {
  router.service(NexusAdmin, {
    listMembers: guarded(async () => {
      // On a follower, the progress comes from the leader over the peer connection.
      const { leader, members, joint, fromLeader, lastIndex } = await r.listMembersWithProgress();
      return {
        status: OK,
        leader,
        self: r.status().id,
        joint,
        fromLeader,
        lastIndex: BigInt(lastIndex),
        members: members.map((m) => ({
          id: m.id,
          url: m.url,
          role: m.role,
          reachable: m.progress?.reachable ?? false,
          match: BigInt(m.progress?.match ?? -1),
          lag: BigInt(m.progress?.lag ?? -1),
          ...(m.progress?.snapshot === undefined
            ? {}
            : {
                snapshot: {
                  index: BigInt(m.progress.snapshot.index),
                  bytes: BigInt(m.progress.snapshot.bytes),
                  totalBytes: BigInt(m.progress.snapshot.totalBytes ?? -1),
                },
              }),
        })),
      };
    }),
    addMember: guarded(async (req: { nodeUrl: string; learner: boolean; noProbe: boolean }) => {
      await r.addMember(req.nodeUrl, { learner: req.learner, probe: !req.noProbe });
      return OK;
    }),
    promoteMember: guarded(async (req: { nodeUrl: string; maxLagEntries?: bigint | undefined }) => {
      await r.promoteLearner(req.nodeUrl, maxLagOf(req.maxLagEntries));
      return OK;
    }),
    changeMembers: guarded(
      async (req: {
        addUrls: string[];
        removeUrls: string[];
        noProbe: boolean;
        maxLagEntries?: bigint | undefined;
      }) => {
        await r.changeMembers({
          add: req.addUrls,
          remove: req.removeUrls,
          probe: !req.noProbe,
          ...maxLagOf(req.maxLagEntries),
        });
        return OK;
      },
    ),
    transferLeader: guarded(async (req: { nodeUrl: string }) => {
      const id = await r.transferLeadership(req.nodeUrl === "" ? undefined : req.nodeUrl);
      const url = r.listMembers().members.find((m) => m.id === id)?.url ?? "";
      return { status: OK, leader: id, leaderUrl: url };
    }),
  });
}

/** Registers Nexus, NexusAdmin, NexusChecks, NexusBackup and grpc.health.v1.Health on a router. */
export function nexusRoutes(r: Replicator, o: ServiceOptions): (router: ConnectRouter) => void {
  return (router) =>
    adminRoutes(
      r,
      backupRoutes(r, checksRoutes(r, healthRoutes(r, router), o.version ?? "")).service(
        Nexus,
        nexusService(r, o),
      ),
    );
}

/** The implementation of nexus.api.Nexus (save, load, membership, health). */
export function nexusService(r: Replicator, o: ServiceOptions): ServiceImpl<typeof Nexus> {
  return {
    check() {
      let serving = false;
      try {
        serving = r.status().serving;
      } catch {
        serving = false;
      }
      return {
        status: serving
          ? HealthCheckResponse_ServingStatus.SERVING
          : HealthCheckResponse_ServingStatus.NOT_SERVING,
      };
    },
    async save(req, ctx: HandlerContext) {
      const receivedAt = writeTrace?.now();
      try {
        checkSize(req.data, req.args, o.maxRequestBytes);
        const { args, request } = requestOf(argsOf(req.args));
        // With a request id, retries of an unknown outcome are safe: go on while the caller
        // waits (its deadline), else make one attempt and let the caller retry with the id.
        const left = ctx.timeoutMs();
        const res = await r.saveWithIndex(req.data, {
          args,
          signal: ctx.signal,
          ...(request === undefined
            ? {}
            : {
                ...request,
                retryForMs: Math.max(0, Date.now() - request.issuedAtMs + (left ?? 0)),
              }),
        });
        if (receivedAt !== undefined) writeTrace?.answered(receivedAt);
        return {
          status: { code: 0, message: "" },
          reqData: req.data,
          resData: res.data,
          index: BigInt(res.index),
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async load(req, ctx: HandlerContext) {
      try {
        checkSize(req.data, req.args, o.maxRequestBytes);
        const { args, minIndex } = minIndexOf(argsOf(req.args));
        const c = args["consistency"];
        if (c !== undefined && !CONSISTENCIES.includes(c as ReadConsistency)) {
          throw new NexusError(
            "INVALID_ARGUMENT",
            `consistency must be linearizable, lease, local or bounded, got "${c}"`,
          );
        }
        // The caller's deadline ends a wait (min-index, a read barrier) with the call.
        const res = await r.load(req.data, {
          args,
          signal: ctx.signal,
          ...(c === undefined ? {} : { consistency: c as ReadConsistency }),
          ...(c === "bounded" ? { staleness: staleBoundOfArgs(args) } : {}),
          ...(minIndex === undefined ? {} : { minIndex }),
        });
        return { status: { code: 0, message: "" }, reqData: req.data, resData: res };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async addNode(req) {
      try {
        await r.addMember(req.nodeUrl);
        return { code: 0, message: "" };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async removeNode(req) {
      try {
        await r.removeMember(req.nodeUrl);
        return { code: 0, message: "" };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    listNodes() {
      try {
        const { leader, members } = r.listMembers();
        const nodes: Record<
          string,
          { nodeUrl: string; nodeId: bigint; status: NodeInfo_NodeStatus }
        > = {};
        for (const m of members) {
          const id = BigInt(`0x${m.id}`);
          nodes[id.toString()] = {
            nodeUrl: m.url,
            nodeId: id,
            status: m.role === "leader" ? NodeInfo_NodeStatus.LEADER : NodeInfo_NodeStatus.FOLLOWER,
          };
        }
        return {
          status: { code: 0, message: "" },
          leader: leader === "" ? 0n : BigInt(`0x${leader}`),
          nodes,
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

/**
 * The hot calls, Save and Load, answered on the HTTP/2 stream API (unary-stream.ts) with the
 * same implementation as on the Connect router.
 */
export function fastRoutes(r: Replicator, o: ServiceOptions): UnaryRoute[] {
  const impl = nexusService(r, o);
  return [unaryRoute(Nexus.method.save, impl.save), unaryRoute(Nexus.method.load, impl.load)];
}
