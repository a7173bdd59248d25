/**
 * Unary gRPC calls answered on node:http2's stream API, without its compatibility layer
 * (Http2ServerRequest/Response) and Connect's streaming pipeline: the hot calls (Save, Load)
 * cost a fraction of the CPU per call (issue 19: about 40 µs against 360 µs in a loopback
 * micro-benchmark). The service implementation is the same function the Connect router runs.
 *
 * The server (server.ts) sends a call here only when its headers are plain gRPC (POST,
 * application/grpc or application/grpc+proto, no request compression) and it passed the same
 * admission as every call (auth, grpc-timeout). For those calls the outcomes match the Connect
 * path's, code for code: a missing or extra message (UNIMPLEMENTED), an incomplete envelope, a
 * body that is not the method's protobuf message or is flagged compressed (INVALID_ARGUMENT),
 * a message over the size limit (RESOURCE_EXHAUSTED), the handler's own status with its details
 * (google.rpc.Status in grpc-status-details-bin). Responses are not compressed.
 */
import type http2 from "node:http2";
import type { DescMessage, DescMethodUnary, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ContextValues, HandlerContext, MethodImpl } from "@connectrpc/connect";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";

/** One unary method taken on the stream API: its descriptor and its implementation. */
export interface UnaryRoute {
  readonly method: DescMethodUnary;
  /** Decodes the request message, runs the implementation, encodes the response message. */
  call(data: Uint8Array, ctx: HandlerContext): Promise<Uint8Array>;
}

/** A route for `method` running `impl` (the function registered on the Connect router). */
export function unaryRoute<I extends DescMessage, O extends DescMessage>(
  method: DescMethodUnary<I, O>,
  impl: MethodImpl<DescMethodUnary<I, O>>,
): UnaryRoute {
  return {
    method: method as unknown as DescMethodUnary,
    async call(data, ctx) {
      const req: MessageShape<I> = decodeRequest(method.input, data);
      const res = await impl(req, ctx);
      return toBinary(method.output, create(method.output, res));
    },
  };
}

/**
 * Decodes a request message; throws INVALID_ARGUMENT when it is not a valid protobuf encoding
 * of `schema` (Connect would call that INTERNAL).
 */
export function decodeRequest<T extends DescMessage>(schema: T, data: Uint8Array): MessageShape<T> {
  try {
    return fromBinary(schema, data);
  } catch {
    throw new ConnectError(
      `the request is not a valid ${schema.typeName} message (protobuf encoding)`,
      Code.InvalidArgument,
    );
  }
}

/** The refusal of a message flagged compressed in a call that names no grpc-encoding. */
export function compressedWithoutEncoding(): ConnectError {
  return new ConnectError(
    "the request message is flagged compressed but the call names no grpc-encoding",
    Code.InvalidArgument,
  );
}

/** Whether a call's headers let it be taken here (else the Connect path takes it). */
export function isPlainUnaryCall(headers: http2.IncomingHttpHeaders): boolean {
  const type = headers["content-type"];
  const enc = headers["grpc-encoding"];
  return (
    headers[":method"] === "POST" &&
    (type === "application/grpc" || type === "application/grpc+proto") &&
    (enc === undefined || enc === "identity")
  );
}

export interface UnaryStreamOptions {
  /** Largest request message accepted, bytes. */
  readonly readMaxBytes: number;
  /** Longest grpc-timeout accepted, ms. */
  readonly maxTimeoutMs: number;
  /** The headers and trailers of a status-only answer (server.ts's refusals use the same). */
  readonly statusHeaders: (err: ConnectError) => http2.OutgoingHttpHeaders;
  /** An answer could not be written (the connection went away). */
  readonly onAnswerFailed: (err: unknown) => void;
}

/** How long a call's request body may pause before the call is answered DEADLINE_EXCEEDED. */
const REQUEST_IDLE_MS = 30_000;

const OK_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" } as const;
const OK_TRAILERS = { "grpc-status": "0" } as const;

/** Answers one unary call on `stream`: reads the request, runs `route`, writes the response. */
export function serveUnary(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  route: UnaryRoute,
  o: UnaryStreamOptions,
): void {
  const chunks: Buffer[] = [];
  let received = 0;
  let answered = false;
  const controller = new AbortController();
  const timeout = parseTimeout(
    typeof headers["grpc-timeout"] === "string" ? headers["grpc-timeout"] : null,
    o.maxTimeoutMs,
  );
  const deadline = timeout.timeoutMs === undefined ? undefined : Date.now() + timeout.timeoutMs;
  // Set once the request is read and the handler runs: before that, a deadline answers at once
  // (a client that never ends its request is not left holding a stream).
  let started = false;
  const timer =
    timeout.timeoutMs === undefined || timeout.error !== undefined
      ? undefined
      : setTimeout(() => {
          const err = new ConnectError("the operation timed out", Code.DeadlineExceeded);
          controller.abort(err);
          if (!started) fail(err);
        }, timeout.timeoutMs);

  const fail = (err: unknown): void => {
    const e =
      err instanceof ConnectError
        ? err
        : new ConnectError("internal error", Code.Internal, undefined, undefined, err);
    finish(() => stream.respond(o.statusHeaders(e), { endStream: true }));
  };
  const finish = (write: () => void): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    stream.off("data", onData);
    stream.setTimeout(0);
    chunks.length = 0;
    if (stream.destroyed || stream.closed) return;
    try {
      write();
    } catch (err) {
      o.onAnswerFailed(err);
    }
  };
  const onData = (c: Buffer): void => {
    chunks.push(c);
    const before = received;
    received += c.length;
    if (before < 5 && received >= 5) {
      const head = chunks.length === 1 ? c : Buffer.concat(chunks);
      const length = head.readUInt32BE(1);
      if (length > o.readMaxBytes) {
        fail(
          new ConnectError(
            `message size ${length} is larger than configured readMaxBytes ${o.readMaxBytes}`,
            Code.ResourceExhausted,
          ),
        );
      }
    } else if (received > 2 * (o.readMaxBytes + 5)) {
      fail(extraMessage());
    }
  };
  if (timeout.error !== undefined) {
    fail(timeout.error);
    return;
  }
  stream.on("data", onData);
  stream.on("error", () => undefined);
  // A request body that stops arriving (no grpc-timeout to end it) is not waited for forever.
  stream.setTimeout(REQUEST_IDLE_MS, () => {
    if (!started) {
      fail(
        new ConnectError(
          `the request did not arrive: nothing received for ${REQUEST_IDLE_MS / 1000} s`,
          Code.DeadlineExceeded,
        ),
      );
    }
  });
  stream.once("close", () => {
    clearTimeout(timer);
    if (!answered) {
      answered = true;
      controller.abort(new ConnectError("the client cancelled the call", Code.Canceled));
    }
  });
  stream.once("end", () => {
    if (answered) return;
    stream.setTimeout(0);
    let data: Uint8Array;
    try {
      data = messageOf(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    } catch (err) {
      fail(err);
      return;
    }
    started = true;
    const ctx = handlerContext(route, headers, controller.signal, deadline);
    route.call(data, ctx).then((body) => {
      finish(() => {
        const envelope = Buffer.allocUnsafe(5 + body.byteLength);
        envelope[0] = 0;
        envelope.writeUInt32BE(body.byteLength, 1);
        envelope.set(body, 5);
        stream.respond(OK_HEADERS, { waitForTrailers: true });
        stream.once("wantTrailers", () => stream.sendTrailers(OK_TRAILERS));
        stream.end(envelope);
      });
    }, fail);
  });
}

function extraMessage(): ConnectError {
  return new ConnectError(
    "protocol error: received extra input message for unary method",
    Code.Unimplemented,
  );
}

/** The one message of a unary request body (gRPC length-prefixed framing). */
function messageOf(buf: Buffer): Uint8Array {
  if (buf.length === 0) {
    throw new ConnectError(
      "protocol error: missing input message for unary method",
      Code.Unimplemented,
    );
  }
  if (buf.length < 5) {
    throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  }
  const length = buf.readUInt32BE(1);
  const end = 5 + length;
  if (end > buf.length) {
    throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  }
  if (end < buf.length) {
    // A second envelope: incomplete, or a second message.
    const rest = buf.subarray(end);
    if (rest.length < 5 || 5 + rest.readUInt32BE(1) > rest.length) {
      throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    }
    throw extraMessage();
  }
  if ((buf[0]! & 1) === 1) throw compressedWithoutEncoding();
  return buf.subarray(5, end);
}

/** The context a Connect handler gets, for a call taken on the stream API. */
function handlerContext(
  route: UnaryRoute,
  headers: http2.IncomingHttpHeaders,
  signal: AbortSignal,
  deadline: number | undefined,
): HandlerContext {
  // Built on first use: the hot handlers read none of them.
  let requestHeader: Headers | undefined;
  let responseHeader: Headers | undefined;
  let responseTrailer: Headers | undefined;
  let values: ContextValues | undefined;
  return {
    method: route.method,
    service: route.method.parent,
    signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    requestMethod: "POST",
    get requestHeader(): Headers {
      if (requestHeader === undefined) {
        requestHeader = new Headers();
        for (const [k, v] of Object.entries(headers)) {
          if (k.startsWith(":") || v === undefined) continue;
          for (const x of Array.isArray(v) ? v : [v]) requestHeader.append(k, x);
        }
      }
      return requestHeader;
    },
    get responseHeader(): Headers {
      return (responseHeader ??= new Headers());
    },
    get responseTrailer(): Headers {
      return (responseTrailer ??= new Headers());
    },
    protocolName: "grpc",
    get values(): ContextValues {
      return (values ??= createContextValues());
    },
    url: headers[":path"] ?? "",
  };
}

/** The status headers of an error as gRPC sends them (trailers-only), with its details. */
export function errorStatusHeaders(err: ConnectError): Record<string, string> {
  const h: Record<string, string> = {};
  setTrailerStatus(new Headers(), err).forEach((v, k) => {
    h[k] = v;
  });
  return h;
}
