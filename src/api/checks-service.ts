/**
 * The NexusChecks service: a node's own status (why it does not serve, whether a consistency
 * check found it diverged), consistency checks on demand, and whether a request id committed.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { Replicator } from "../node/replicator.js";
import { NexusChecks } from "./gen/nexus_checks_pb.js";
import { toConnectError } from "./errors.js";

const OK = { code: 0, message: "" };
/** The longest a client may ask checkConsistency to wait, ms. */
const MAX_CHECK_WAIT_MS = 120_000;

/** Registers NexusChecks on a Connect router; `version` is what NodeStatus says the node runs. */
export function checksRoutes(r: Replicator, router: ConnectRouter, version = ""): ConnectRouter {
  return router.service(NexusChecks, {
    nodeStatus() {
      try {
        const st = r.status();
        return {
          status: OK,
          serving: st.serving,
          reason: st.notServingReason,
          role: st.role,
          term: BigInt(st.term),
          leader: st.leader,
          commit: BigInt(st.commit),
          applied: BigInt(st.applied),
          divergedAt: BigInt(st.diverged?.index ?? -1),
          divergedReason: st.diverged?.reason ?? "",
          version,
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async requestOutcome(req) {
      try {
        const o = await r.requestOutcome(req.requestId);
        return {
          status: OK,
          committed: o.committed,
          ok: o.committed && o.result.ok,
          resData: o.committed && o.result.ok ? o.result.data : new Uint8Array(0),
          error: o.committed && !o.result.ok ? o.result.error : "",
          index: BigInt(o.committed ? o.index : 0),
          appliedIndex: BigInt(o.at),
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async checkConsistency(req) {
      try {
        const timeoutMs = Math.min(req.timeoutMs === 0 ? 10_000 : req.timeoutMs, MAX_CHECK_WAIT_MS);
        const res = await r.checkConsistency({ timeoutMs });
        return {
          status: OK,
          index: BigInt(res.index),
          complete: res.complete,
          members: res.members.map((m) => ({ ...m })),
        };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  });
}
