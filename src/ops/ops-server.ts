/**
 * The operations HTTP port: /metrics (Prometheus text), /livez, /readyz, /status (JSON),
 * /status/rates (JSON of recent save/load rates) and / (the status page). HTTP/1.1, GET only;
 * nothing here changes the node.
 */
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { ReloadableTls } from "../security/tls.js";
import { serverSecureOptions } from "../security/tls.js";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import type { Replicator } from "../node/replicator.js";
import type { OpsMetrics } from "./metrics.js";
import type { ReadinessOptions } from "./node-status.js";
import { nodeStatus, readinessOf, statusOf } from "./node-status.js";

export interface OpsServerOptions {
  readonly replicator: Replicator;
  readonly metrics: OpsMetrics;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly version: string;
  readonly readiness?: ReadinessOptions;
  readonly grpcAddress?: string;
  /** When the process started, ms since the epoch. Default: now. */
  readonly startedAt?: number;
  /**
   * Serve HTTPS with this material (the gRPC service's: -grpc-cert-file and -grpc-key-file; with
   * -grpc-trusted-ca-file clients must present a certificate). Reloads with it.
   */
  readonly tls?: ReloadableTls;
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

let page: string | undefined;

/**
 * The status page: status-page.html beside this module in a checkout (src/ops), or in the
 * package's src/ops when this module runs from dist/src/ops (tsc copies no HTML).
 */
export function statusPageHtml(): string {
  if (page !== undefined) return page;
  const candidates = [
    new URL("./status-page.html", import.meta.url),
    new URL("../../../src/ops/status-page.html", import.meta.url),
  ];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return (page = readFileSync(p, "utf8"));
  }
  throw new Error(`status-page.html not found beside ${fileURLToPath(import.meta.url)}`);
}

/** The event loop is alive when this timer ran lately. */
class LoopWatch {
  private last = Date.now();
  private readonly timer = setInterval(() => (this.last = Date.now()), 500);
  constructor() {
    this.timer.unref();
  }
  stalledMs(): number {
    return Date.now() - this.last;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    "content-type": type,
    "cache-control": "no-store",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function json(res: http.ServerResponse, status: number, v: unknown): void {
  send(res, status, "application/json; charset=utf-8", `${JSON.stringify(v, null, 2)}\n`);
}

/** Starts the operations HTTP server. Rejects (EADDRINUSE, ...) when it cannot listen. */
export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const loop = new LoopWatch();
  const startedAt = o.startedAt ?? Date.now();
  const ctx = {
    rep: o.replicator,
    metrics: o.metrics,
    version: o.version,
    startedAt,
    readiness: o.readiness ?? {},
    grpcAddress: o.grpcAddress ?? "",
  };
  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "text/plain; charset=utf-8", "only GET and HEAD are served here\n");
      return;
    }
    switch (path) {
      case "/metrics": {
        o.metrics.sample();
        const text = await o.metrics.registry.metrics();
        send(res, 200, o.metrics.registry.contentType, text);
        return;
      }
      case "/livez": {
        const stalled = loop.stalledMs();
        const st = statusOf(o.replicator);
        if (st === undefined)
          send(res, 503, "text/plain; charset=utf-8", "not live: the node stopped\n");
        else if (stalled > 5000)
          send(
            res,
            503,
            "text/plain; charset=utf-8",
            `not live: the event loop stalled ${stalled} ms\n`,
          );
        else send(res, 200, "text/plain; charset=utf-8", "ok\n");
        return;
      }
      case "/readyz": {
        const r = readinessOf(statusOf(o.replicator), ctx.readiness);
        if (r.ready) send(res, 200, "text/plain; charset=utf-8", "ok\n");
        else send(res, 503, "text/plain; charset=utf-8", `not ready: ${r.reason}\n`);
        return;
      }
      case "/status":
        json(res, 200, await nodeStatus(ctx));
        return;
      case "/status/rates":
        json(res, 200, {
          bucketSeconds: o.metrics.rates.bucketMs / 1000,
          save: o.metrics.rates.series("save"),
          load: o.metrics.rates.series("load"),
        });
        return;
      case "/":
      case "/index.html":
        send(res, 200, "text/html; charset=utf-8", statusPageHtml());
        return;
      default:
        send(
          res,
          404,
          "text/plain; charset=utf-8",
          `no such page: ${path}; try /, /status, /metrics, /livez or /readyz\n`,
        );
    }
  };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        send(res, 500, "text/plain; charset=utf-8", `error: ${(err as Error).message}\n`);
      } else res.destroy();
    });
  };
  const tls = o.tls;
  let server: http.Server;
  if (tls === undefined) server = http.createServer(onRequest);
  else {
    const secure = https.createServer(
      { ...serverSecureOptions(tls.material), minVersion: "TLSv1.2", handshakeTimeout: 10_000 },
      onRequest,
    );
    tls.onChange((m) => secure.setSecureContext(serverSecureOptions(m)));
    server = secure;
  }
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  o.metrics.start();
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        loop.stop();
        o.metrics.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
