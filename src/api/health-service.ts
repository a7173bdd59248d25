/**
 * The standard gRPC health service, grpc.health.v1.Health (Check and Watch), beside the original's
 * Nexus.Check, so Kubernetes gRPC probes, grpc-health-probe and load balancers can ask a node.
 * "" and every service the node serves answer SERVING when the node can serve requests (a leader
 * is known, its store is up, it is not diverged), NOT_SERVING otherwise; another name is NOT_FOUND
 * for Check and SERVICE_UNKNOWN for Watch, as the protocol says.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import type { Replicator } from "../node/replicator.js";
import { Health, HealthCheckResponse_ServingStatus } from "./gen/grpc/health/v1/health_pb.js";
import { NexusAdmin } from "./gen/nexus_admin_pb.js";
import { NexusChecks } from "./gen/nexus_checks_pb.js";
import { Nexus } from "./gen/nexus_pb.js";

/** The names a health client may ask about. */
export const HEALTH_SERVICES: readonly string[] = [
  "",
  Nexus.typeName,
  NexusAdmin.typeName,
  NexusChecks.typeName,
  Health.typeName,
];

/** How often Watch looks at the node's status, ms. */
const WATCH_EVERY_MS = 250;

function statusOf(r: Replicator, service: string): HealthCheckResponse_ServingStatus {
  if (!HEALTH_SERVICES.includes(service)) return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
  try {
    return r.status().serving
      ? HealthCheckResponse_ServingStatus.SERVING
      : HealthCheckResponse_ServingStatus.NOT_SERVING;
  } catch {
    return HealthCheckResponse_ServingStatus.NOT_SERVING; // stopped
  }
}

/** Resolves after ms, or at once when the call ends. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}

/** Registers grpc.health.v1.Health on a Connect router. */
export function healthRoutes(r: Replicator, router: ConnectRouter): ConnectRouter {
  return router.service(Health, {
    check(req) {
      const status = statusOf(r, req.service);
      if (status === HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN) {
        throw new ConnectError(
          `service "${req.service}" is not served here; ask for "" or one of ${HEALTH_SERVICES.filter((s) => s !== "").join(", ")}`,
          Code.NotFound,
        );
      }
      return { status };
    },
    async *watch(req, ctx: HandlerContext) {
      let last: HealthCheckResponse_ServingStatus | undefined;
      while (!ctx.signal.aborted) {
        const status = statusOf(r, req.service);
        if (status !== last) {
          last = status;
          yield { status };
        }
        await pause(WATCH_EVERY_MS, ctx.signal);
      }
    },
  });
}
