/**
 * The gRPC server of a node: `nexus.api.Nexus` (with NexusAdmin and NexusChecks) over HTTP/2, on
 * its own port: h2c, or TLS with `tls` (then, when it has a trusted CA, clients must present a
 * certificate that CA signed). With `auth`, every call needs a bearer token with the permission
 * of its method (src/security/auth.ts); a refusal is UNAUTHENTICATED or PERMISSION_DENIED and
 * says nothing about which tokens exist. A request body that is not a valid protobuf message of
 * its method is refused with INVALID_ARGUMENT before any handler runs.
 */
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Replicator } from "../node/replicator.js";
import type { TokenAuth } from "../security/auth.js";
import type { ReloadableTls } from "../security/tls.js";
import { serverSecureOptions } from "../security/tls.js";
import { fastRoutes, nexusRoutes } from "./service.js";
import type { UnaryStreamOptions } from "./unary-stream.js";
import {
  compressedWithoutEncoding,
  decodeRequest,
  errorStatusHeaders,
  isPlainUnaryCall,
  serveUnary,
} from "./unary-stream.js";

/** Where the server reports refusals and reloads (a pino logger fits). */
export interface ApiServerLog {
  info(f: Readonly<Record<string, unknown>>, m?: string): void;
  warn(f: Readonly<Record<string, unknown>>, m: string): void;
}

export interface ApiServerOptions {
  readonly replicator: Replicator;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Largest request accepted, bytes (data plus args); larger ones are refused. */
  readonly maxRequestBytes: number;
  /** The version the node runs, which NexusChecks.NodeStatus answers (`nexus status`). */
  readonly version?: string;
  /**
   * TLS for clients: the server's certificate and key, and optionally the CA(s) whose client
   * certificates are required. Reloads (SIGHUP, file changes) apply to new connections.
   */
  readonly tls?: ReloadableTls;
  /** Tokens and permissions; without it every call is allowed (the original's behaviour). */
  readonly auth?: TokenAuth;
  readonly logger?: ApiServerLog;
}

export interface ApiServer {
  readonly port: number;
  /**
   * Stops accepting calls and resolves once in-flight calls have finished; connections still open
   * after graceMs (default 2000) are cut.
   */
  close(graceMs?: number): Promise<void>;
}

/** Status messages of refusals: the same for every way of failing, nothing to learn from. */
const UNAUTHENTICATED_MESSAGE =
  "unauthenticated: send a valid token as authorization: Bearer <token>";
const PERMISSION_DENIED_MESSAGE = "permission denied";

/** Starts the gRPC server. */
export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const log = o.logger ?? { info() {}, warn() {} };
  const readMaxBytes = o.maxRequestBytes + 64 * 1024;
  const router = createConnectRouter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    // Refuse messages far larger than the request limit before decoding them.
    readMaxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    // Deadlines past what a timer can hold are refused (INVALID_ARGUMENT), not overflowed.
    maxTimeoutMs: MAX_TIMEOUT_MS,
  });
  nexusRoutes(o.replicator, {
    maxRequestBytes: o.maxRequestBytes,
    ...(o.version === undefined ? {} : { version: o.version }),
  })(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const unaryRoutes = new Map(
    fastRoutes(o.replicator, { maxRequestBytes: o.maxRequestBytes }).map((r) => [
      `/${r.method.parent.typeName}/${r.method.name}`,
      r,
    ]),
  );
  const refusals = refusalLog(log);
  const answerFailed = (err: unknown): void => {
    if (ConnectError.from(err).code !== Code.Aborted) {
      log.warn({ error: String(err) }, "a gRPC call failed while answering");
    }
  };
  const unaryOptions: UnaryStreamOptions = {
    readMaxBytes,
    maxTimeoutMs: MAX_TIMEOUT_MS,
    statusHeaders: (e) => ({ ":status": 200, ...statusHeaders(e) }),
    onAnswerFailed: answerFailed,
  };

  /**
   * The refusal of a call before it runs (auth, a deadline too long), or undefined: the same
   * admission on both paths.
   */
  const admit = (
    headers: http2.IncomingHttpHeaders,
    service: string,
    method: string,
    remote: string | undefined,
  ): ConnectError | undefined => {
    if (o.auth !== undefined) {
      const auth = headers["authorization"];
      const d = o.auth.decide(typeof auth === "string" ? auth : undefined, service, method);
      if (!d.ok) {
        refusals({
          code: d.code,
          method: `${service}/${method}`,
          ...(d.code === "PERMISSION_DENIED" ? { token: d.name } : {}),
          remote,
        });
        return d.code === "UNAUTHENTICATED"
          ? new ConnectError(UNAUTHENTICATED_MESSAGE, Code.Unauthenticated)
          : new ConnectError(PERMISSION_DENIED_MESSAGE, Code.PermissionDenied);
      }
    }
    const timeout = headers["grpc-timeout"];
    if (typeof timeout === "string" && tooLong(timeout)) {
      return new ConnectError(
        `grpc-timeout ${timeout} is longer than the ~24 days allowed`,
        Code.InvalidArgument,
      );
    }
    return undefined;
  };

  const onRequest = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const h = handlers.get((req.url ?? "").split("?", 1)[0]!);
    if (h === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    const refusal = admit(
      req.headers,
      h.service.typeName,
      h.method.name,
      req.socket?.remoteAddress,
    );
    if (refusal !== undefined) {
      res.writeHead(200, statusHeaders(refusal));
      res.end();
      return;
    }
    respondWithSpecMessages(res);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, undefined);
    const enc = req.headers["grpc-encoding"];
    const body = uReq.body as AsyncIterable<Uint8Array>;
    h({
      ...uReq,
      body: validated(body, h.method.input, typeof enc === "string" ? enc : "", readMaxBytes),
    })
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((err: unknown) => {
        // The connection went away while answering: nothing to answer to.
        if (!res.writableEnded && !res.stream.destroyed) {
          res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        }
        answerFailed(err);
      });
  };

  /**
   * Every stream: plain unary calls of the hot methods on the stream API (unary-stream.ts),
   * everything else through the compatibility layer and the Connect router.
   */
  const onStream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    _flags: number,
    rawHeaders: string[],
  ): void => {
    const route = unaryRoutes.get((headers[":path"] ?? "").split("?", 1)[0]!);
    if (route !== undefined && isPlainUnaryCall(headers)) {
      const refusal = admit(
        headers,
        route.method.parent.typeName,
        route.method.name,
        stream.session?.socket?.remoteAddress,
      );
      if (refusal !== undefined) {
        stream.on("error", () => undefined);
        stream.respond({ ":status": 200, ...statusHeaders(refusal) }, { endStream: true });
        return;
      }
      serveUnary(stream, headers, route, unaryOptions);
      return;
    }
    // What node:http2 does for a server with a request listener (its compatibility layer).
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    if (headers[":method"] === "CONNECT") {
      res.statusCode = http2.constants.HTTP_STATUS_METHOD_NOT_ALLOWED;
      res.end();
      return;
    }
    if (headers["expect"] === "100-continue") res.writeContinue();
    onRequest(req, res);
  };

  const server =
    o.tls === undefined
      ? http2.createServer(SERVER_LIMITS)
      : http2.createSecureServer({
          ...SERVER_LIMITS,
          ...serverSecureOptions(o.tls.material),
          allowHTTP1: false,
          minVersion: "TLSv1.2",
          handshakeTimeout: 10_000,
        });
  server.on("stream", onStream);
  if (o.tls !== undefined) {
    const tls = o.tls;
    const secure = server as http2.Http2SecureServer;
    tls.onChange((m) => secure.setSecureContext(serverSecureOptions(m)));
    secure.on("tlsClientError", (err: Error & { code?: string }) =>
      refusals({ code: "TLS", error: err.code ?? err.message }),
    );
  }
  // A session that fails (a client resetting, a protocol error) must never crash the node.
  server.on("sessionError", () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => log.warn({ error: err.message }, "gRPC server error"));
  const port = (server.address() as AddressInfo).port;
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("error", () => undefined);
    s.on("close", () => sessions.delete(s));
  });
  return {
    port,
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        o.tls?.close();
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

const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 1e-3,
  n: 1e-6,
};

/** Whether a grpc-timeout header asks for more than a timer can hold (left to the library otherwise). */
function tooLong(v: string): boolean {
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  return m !== null && Number(m[1]) * TIMEOUT_UNIT_MS[m[2]!]! > MAX_TIMEOUT_MS;
}

/** Limits of every gRPC connection: concurrent calls, header sizes. */
const SERVER_LIMITS = {
  settings: { maxConcurrentStreams: 1000, maxHeaderListSize: 64 * 1024 },
  maxSessionInvalidFrames: 100,
  maxSessionRejectedStreams: 100,
} satisfies http2.ServerOptions;

/** The headers of a status-only answer (trailers-only): the status, its message and details. */
function statusHeaders(e: ConnectError): http2.OutgoingHttpHeaders {
  return {
    "content-type": "application/grpc+proto",
    ...errorStatusHeaders(e),
    "grpc-message": encodeGrpcMessage(e.rawMessage),
  };
}

/**
 * Logs refusals (bad credentials, failed TLS handshakes) at most once a second, with the number
 * left out since the last line: a client retrying in a loop cannot flood the log.
 */
function refusalLog(log: ApiServerLog): (f: Record<string, unknown>) => void {
  let last = 0;
  let skipped = 0;
  return (f) => {
    const now = Date.now();
    if (now - last < 1000) {
      skipped++;
      return;
    }
    last = now;
    log.warn(
      { ...f, ...(skipped > 0 ? { alsoRefusedSinceLastLine: skipped } : {}) },
      "refused a gRPC call",
    );
    skipped = 0;
  };
}

/**
 * The request body, checked before the handler reads it: every complete message in it must be a
 * valid protobuf encoding of the method's input type, or the call fails with INVALID_ARGUMENT
 * (the library would call a decoding failure INTERNAL). Bodies over `limit` bytes, and framing
 * errors, are passed on unchecked: the library refuses them with its own clear statuses.
 */
async function* validated(
  body: AsyncIterable<Uint8Array>,
  schema: DescMessage,
  encoding: string,
  limit: number,
): AsyncGenerator<Uint8Array> {
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let n = 0;
  let over = false;
  for (;;) {
    const r = await it.next();
    if (r.done === true) break;
    chunks.push(r.value);
    n += r.value.byteLength;
    if (n > limit + 5) {
      over = true;
      break;
    }
  }
  if (!over) checkMessages(Buffer.concat(chunks), schema, encoding, limit);
  yield* chunks;
  if (!over) return;
  for (;;) {
    const r = await it.next();
    if (r.done === true) return;
    yield r.value;
  }
}

/**
 * Throws INVALID_ARGUMENT when a complete gRPC message in `buf` does not decode as `schema`, or
 * is flagged compressed without an encoding or does not decompress with it (gzip, br);
 * RESOURCE_EXHAUSTED when it decompresses to more than `limit` bytes. Messages in an encoding it
 * does not know are left to the library (which refuses the encoding as UNIMPLEMENTED).
 */
export function checkMessages(
  buf: Buffer,
  schema: DescMessage,
  encoding: string,
  limit: number,
): void {
  let at = 0;
  while (at + 5 <= buf.length) {
    const compressed = (buf[at]! & 1) === 1;
    const len = buf.readUInt32BE(at + 1);
    if (at + 5 + len > buf.length) return;
    let data: Uint8Array = buf.subarray(at + 5, at + 5 + len);
    at += 5 + len;
    if (compressed) {
      const inflate =
        encoding === "gzip" ? gunzipSync : encoding === "br" ? brotliDecompressSync : undefined;
      if (encoding === "" || encoding === "identity") throw compressedWithoutEncoding();
      if (inflate === undefined) continue;
      try {
        data = inflate(data, { maxOutputLength: limit });
      } catch (err) {
        if ((err as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
          throw new ConnectError(
            `the request message decompresses to more than ${limit} bytes`,
            Code.ResourceExhausted,
          );
        }
        throw new ConnectError(
          `the request message does not decompress as ${encoding}`,
          Code.InvalidArgument,
        );
      }
    }
    decodeRequest(schema, data);
  }
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
