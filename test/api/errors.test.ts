/**
 * The error contract of the gRPC API (src/api/errors.ts, src/api/DESIGN.md): the Nexus code
 * travels as a google.rpc.ErrorInfo detail and the client reads it from there, never from the
 * message; a status without it maps by its gRPC code alone. Over a real HTTP/2 server whose
 * handlers throw chosen errors, and the project's client.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  NEXUS_ERROR_CODES,
  NexusError,
  NotLeaderError,
  isNexusError,
} from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import {
  ERROR_DOMAIN,
  grpcCodeOf,
  nexusCodeOfGrpc,
  nexusInfoOf,
  toConnectError,
} from "../../src/api/errors.js";
import type { CallKind } from "../../src/api/errors.js";
import { createNexusClient } from "../../src/api/client.js";
import type { NexusClient } from "../../src/api/client.js";
import { Nexus, StatusSchema } from "../../src/api/gen/nexus_pb.js";
import { ErrorInfoSchema } from "../../src/api/gen/google/rpc/error_details_pb.js";

const enc = new TextEncoder();

describe("toConnectError: a NexusError as a gRPC status", () => {
  for (const code of NEXUS_ERROR_CODES) {
    it(`${code}: the table's gRPC code, the message as is, ErrorInfo and the original's Status`, () => {
      const e = toConnectError(new NexusError(code, "what happened; what to do"));
      assert.equal(e.code, grpcCodeOf(code));
      assert.equal(e.rawMessage, "what happened; what to do");
      const [info] = e.findDetails(ErrorInfoSchema);
      assert.ok(info, "an ErrorInfo detail");
      assert.equal(info.reason, code);
      assert.equal(info.domain, ERROR_DOMAIN);
      assert.deepEqual(info.metadata, {});
      const [status] = e.findDetails(StatusSchema);
      assert.deepEqual(
        { code: status?.code, message: status?.message },
        {
          code: -1,
          message: "what happened; what to do",
        },
      );
    });
  }

  it("a NotLeaderError carries the leader's URL in the ErrorInfo metadata", () => {
    const e = toConnectError(new NotLeaderError("send it to the leader", "http://10.0.0.1:9021"));
    assert.equal(e.code, Code.FailedPrecondition);
    assert.deepEqual(nexusInfoOf(e), { code: "NOT_LEADER", leaderUrl: "http://10.0.0.1:9021" });
  });

  it("a foreign error is INTERNAL with its message", () => {
    const e = toConnectError(new TypeError("x is undefined"));
    assert.equal(e.code, Code.Internal);
    assert.equal(e.rawMessage, "x is undefined");
    assert.equal(nexusInfoOf(e)?.code, "INTERNAL");
  });

  it("an ErrorInfo of another domain, or with an unknown reason, is not a Nexus code", () => {
    for (const value of [
      { reason: "NO_LEADER", domain: "example.com", metadata: {} },
      { reason: "NOT_A_CODE", domain: ERROR_DOMAIN, metadata: {} },
    ]) {
      const e = new ConnectError("x", Code.Unavailable, undefined, [
        { desc: ErrorInfoSchema, value },
      ]);
      assert.equal(nexusInfoOf(e), undefined);
    }
  });
});

describe("nexusCodeOfGrpc: a status without ErrorInfo, by its gRPC code alone", () => {
  for (const c of [
    {
      name: "InvalidArgument refuses a write",
      grpc: Code.InvalidArgument,
      kind: "write",
      want: "INVALID_ARGUMENT",
    },
    {
      name: "Unimplemented (a call the server lacks)",
      grpc: Code.Unimplemented,
      kind: "membership",
      want: "INVALID_ARGUMENT",
    },
    {
      name: "ResourceExhausted is TOO_LARGE",
      grpc: Code.ResourceExhausted,
      kind: "write",
      want: "TOO_LARGE",
    },
    {
      name: "FailedPrecondition of a membership change",
      grpc: Code.FailedPrecondition,
      kind: "membership",
      want: "MEMBERSHIP_REFUSED",
    },
    {
      name: "FailedPrecondition of a read",
      grpc: Code.FailedPrecondition,
      kind: "read",
      want: "NOT_LEADER",
    },
    { name: "Unavailable read", grpc: Code.Unavailable, kind: "read", want: "NOT_SERVING" },
    {
      name: "Unavailable write may have been applied",
      grpc: Code.Unavailable,
      kind: "write",
      want: "UNKNOWN_OUTCOME",
    },
    { name: "DeadlineExceeded read", grpc: Code.DeadlineExceeded, kind: "read", want: "TIMEOUT" },
    {
      name: "DeadlineExceeded write",
      grpc: Code.DeadlineExceeded,
      kind: "write",
      want: "UNKNOWN_OUTCOME",
    },
    {
      name: "Unknown (the original's errors) of a write",
      grpc: Code.Unknown,
      kind: "write",
      want: "UNKNOWN_OUTCOME",
    },
    { name: "Unknown of a read", grpc: Code.Unknown, kind: "read", want: "INTERNAL" },
    { name: "DataLoss", grpc: Code.DataLoss, kind: "read", want: "CORRUPTED" },
  ] satisfies { name: string; grpc: Code; kind: CallKind; want: NexusErrorCode }[]) {
    it(c.name, () => assert.equal(nexusCodeOfGrpc(c.grpc, c.kind), c.want));
  }
});

describe("the client reads the code from ErrorInfo over the wire", () => {
  /** What the next call's handler throws. */
  let next: () => unknown = () => new Error("unset");
  let server: http2.Http2Server;
  let client: NexusClient;

  before(async () => {
    const fail = (): never => {
      throw next();
    };
    const routes = (router: ConnectRouter): void => {
      router.service(Nexus, {
        save: fail,
        load: fail,
        addNode: fail,
      });
    };
    const handler = connectNodeAdapter({ routes, grpc: true, grpcWeb: false, connect: false });
    server = http2.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    client = createNexusClient(`127.0.0.1:${(server.address() as AddressInfo).port}`, {
      timeoutMs: 10_000,
    });
  });
  after(async () => {
    client.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const failure = async (p: Promise<unknown>): Promise<NexusError> => {
    const err = await p.then(
      () => assert.fail("the call succeeded"),
      (e: unknown) => e,
    );
    assert.ok(isNexusError(err), String(err));
    return err;
  };

  for (const code of NEXUS_ERROR_CODES) {
    it(`${code} comes back as ${code} with the server's message, whatever the message says`, async () => {
      // A message that names another code must not change the code the client sees.
      const message = `PROPOSAL_DROPPED: no leader; ${code.toLowerCase()} for real`;
      next = () => toConnectError(new NexusError(code, message));
      const e = await failure(client.save(enc.encode("x")));
      assert.equal(e.code, code);
      assert.equal(e.message, message);
    });
  }

  it("NOT_LEADER comes back as a NotLeaderError with the leader's URL", async () => {
    next = () => toConnectError(new NotLeaderError("ask the leader", "http://127.0.0.1:9021"));
    const e = await failure(client.addNode("http://127.0.0.1:9024"));
    assert.ok(e instanceof NotLeaderError);
    assert.equal(e.leaderUrl, "http://127.0.0.1:9021");
  });

  it("a status without ErrorInfo (an older or foreign server) maps by gRPC code, never by its text", async () => {
    // An older Nexus server wrote "CODE: message" into the status text: it is not parsed.
    next = () => new ConnectError("STORE_ERROR: no such table: t", Code.Unavailable);
    const load = await failure(client.load(enc.encode("select 1")));
    assert.equal(load.code, "NOT_SERVING");
    assert.match(load.message, /STORE_ERROR: no such table: t/);
    const save = await failure(client.save(enc.encode("insert")));
    assert.equal(save.code, "UNKNOWN_OUTCOME");
    assert.match(save.message, /without saying whether it was applied: it may or may not/);
    next = () => new ConnectError("NO_LEADER: not really", Code.InvalidArgument);
    assert.equal((await failure(client.save(enc.encode("insert")))).code, "INVALID_ARGUMENT");
    // The original's Go server answers every failure with Unknown and the error's text.
    next = () => new Error("proposal dropped");
    assert.equal((await failure(client.save(enc.encode("insert")))).code, "UNKNOWN_OUTCOME");
  });

  it("a method the server lacks is refused, not an unknown outcome", async () => {
    const e = await failure(client.removeNode("http://127.0.0.1:9024"));
    assert.equal(e.code, "INVALID_ARGUMENT");
  });

  it("a server that cannot be reached is UNREACHABLE (nothing was sent)", async () => {
    const s = http2.createServer();
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    const c = createNexusClient(`127.0.0.1:${port}`, { timeoutMs: 5000 });
    try {
      const e = await failure(c.save(enc.encode("x")));
      assert.equal(e.code, "UNREACHABLE");
    } finally {
      c.close();
    }
  });
});
