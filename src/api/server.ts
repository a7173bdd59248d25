/**
 * The gRPC server of a node: `nexus.api.Nexus` over HTTP/2 (h2c), on its own port.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Replicator } from "../node/replicator.js";
import { nexusRoutes } from "./service.js";

export interface ApiServerOptions {
  readonly replicator: Replicator;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest request accepted, bytes (data plus args); larger ones are refused. */
  readonly maxRequestBytes: number;
}

export interface ApiServer {
  readonly port: number;
  /**
   * Stops accepting calls and resolves once in-flight calls have finished; connections still open
   * after graceMs (default 2000) are cut.
   */
  close(graceMs?: number): Promise<void>;
}

/** Starts the gRPC server. */
export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const handler = connectNodeAdapter({
    routes: nexusRoutes(o.replicator, { maxRequestBytes: o.maxRequestBytes }),
    grpc: true,
    grpcWeb: false,
    connect: false,
    // Refuse messages far larger than the request limit before decoding them.
    readMaxBytes: o.maxRequestBytes + 64 * 1024,
  });
  const server = http2.createServer((req, res) => {
    respondWithSpecMessages(res);
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  return {
    port,
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        for (const s of sessions) s.close();
        // Calls still open after the grace period (a client that never ends its stream) are cut.
        const timer = setTimeout(() => {
          for (const s of sessions) s.destroy();
        }, graceMs);
      }),
  };
}

/**
 * The gRPC spec percent-encodes only `%` and bytes outside 0x20-0x7E in `grpc-message`; the
 * library encodes every reserved URI character (`:` as `%3A`), which grpc-js clients, decoding
 * with decodeURI, then show as is. Re-encodes the header as the spec does, on this response.
 */
function respondWithSpecMessages(res: http2.Http2ServerResponse): void {
  const fix = (h: unknown): void => {
    if (typeof h !== "object" || h === null) return;
    const rec = h as Record<string, unknown>;
    const v = rec["grpc-message"];
    if (typeof v !== "string") return;
    let raw: string;
    try {
      raw = decodeURIComponent(v);
    } catch {
      return;
    }
    rec["grpc-message"] = encodeGrpcMessage(raw);
  };
  const writeHead = res.writeHead.bind(res) as (...a: unknown[]) => http2.Http2ServerResponse;
  (res as { writeHead: unknown }).writeHead = (...a: unknown[]) => {
    for (const x of a) fix(x);
    return writeHead(...a);
  };
  const addTrailers = res.addTrailers.bind(res);
  res.addTrailers = (h) => {
    fix(h);
    addTrailers(h);
  };
}

/** Percent-encodes `%` and every byte outside 0x20-0x7E (gRPC over HTTP/2, Status-Message). */
export function encodeGrpcMessage(s: string): string {
  let out = "";
  for (const b of Buffer.from(s, "utf8")) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
