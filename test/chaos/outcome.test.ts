/**
 * The error-to-outcome table of the chaos workload, through the real client: every Nexus error
 * code a server can send (over a real HTTP/2 gRPC server), and the transport failures the client
 * sees when nothing listens, when nothing answers, and when the connection dies after the request
 * was sent.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter } from "@connectrpc/connect";
import { createNexusClient } from "../../src/api/client.js";
import { toConnectError } from "../../src/api/errors.js";
import { Nexus } from "../../src/api/gen/nexus_pb.js";
import { NEXUS_ERROR_CODES, NexusError } from "../../src/errors/index.js";
import type { NexusErrorCode } from "../../src/errors/index.js";
import { FAILED_CODES, outcomeOfError } from "./outcome.js";
import { perform } from "./workload.js";

const listen = (s: Server | http2.Http2Server): Promise<number> =>
  new Promise((resolve) =>
    s.listen(0, "127.0.0.1", () => resolve((s.address() as { port: number }).port)),
  );

/** What the table must say for each code (the comment table in outcome.ts, as data). */
const EXPECTED: Record<NexusErrorCode, "failed" | "unknown"> = {
  INVALID_ARGUMENT: "failed",
  TOO_LARGE: "failed",
  NOT_LEADER: "failed",
  NO_LEADER: "failed",
  TIMEOUT: "unknown",
  UNKNOWN_OUTCOME: "unknown",
  PROPOSAL_DROPPED: "failed",
  MEMBERSHIP_REFUSED: "failed",
  STOPPED: "unknown",
  STORE_ERROR: "failed",
  STORE_UNAVAILABLE: "unknown",
  NOT_SERVING: "failed",
  TOO_STALE: "failed",
  WAL_FAILED: "unknown",
  CORRUPTED: "unknown",
  BAD_CONFIG: "failed",
  UNREACHABLE: "failed",
  UNAUTHENTICATED: "failed",
  PERMISSION_DENIED: "failed",
  INTERNAL: "unknown",
};

describe("chaos: error to outcome", () => {
  it("classifies every error code (a new code must be classified on purpose)", () => {
    assert.deepEqual([...NEXUS_ERROR_CODES].sort(), Object.keys(EXPECTED).sort());
    for (const code of NEXUS_ERROR_CODES) {
      const r = outcomeOfError(new NexusError(code, "boom\nsecond line"));
      assert.equal(r.outcome, EXPECTED[code], code);
      assert.equal(r.error, `${code}: boom`);
      assert.equal(FAILED_CODES.has(code), EXPECTED[code] === "failed");
    }
  });

  it("calls anything that is not a NexusError unknown", () => {
    assert.equal(outcomeOfError(new Error("socket hang up")).outcome, "unknown");
    assert.equal(outcomeOfError("weird").outcome, "unknown");
  });

  describe("through a real gRPC server that answers with each code", () => {
    let server: http2.Http2Server;
    let port = 0;
    before(async () => {
      const routes = (router: ConnectRouter): void => {
        router.service(Nexus, {
          save(req) {
            const code = new TextDecoder().decode(req.data) as NexusErrorCode;
            throw toConnectError(new NexusError(code, `the server says ${code}`));
          },
          load(req) {
            const code = new TextDecoder().decode(req.data) as NexusErrorCode;
            throw toConnectError(new NexusError(code, `the server says ${code}`));
          },
        });
      };
      const handler = connectNodeAdapter({ routes, grpc: true, grpcWeb: false, connect: false });
      server = http2.createServer(handler);
      port = await listen(server);
    });
    after(() => server.close());

    it("maps a save's and a load's error code as the table says", async () => {
      const c = createNexusClient(`127.0.0.1:${port}`, { timeoutMs: 5000 });
      try {
        for (const code of NEXUS_ERROR_CODES) {
          const data = new TextEncoder().encode(code);
          const w = await perform(
            { ...c, save: () => c.save(data), load: () => c.load(data) },
            { kind: "write", key: "a", value: 1 },
          );
          assert.equal(w.outcome, EXPECTED[code], `save ${code}`);
          assert.match(w.error ?? "", new RegExp(`^${code}: `));
          const r = await perform(
            { ...c, save: () => c.save(data), load: () => c.load(data) },
            { kind: "read", key: "a", mode: "linearizable" },
          );
          assert.equal(r.outcome, EXPECTED[code], `load ${code}`);
        }
      } finally {
        c.close();
      }
    });
  });

  it("a save to a port where nothing listens failed (never sent)", async () => {
    const s = createServer();
    const port = await listen(s);
    await new Promise<void>((r) => s.close(() => r()));
    const c = createNexusClient(`127.0.0.1:${port}`, { timeoutMs: 2000 });
    try {
      const r = await perform(c, { kind: "write", key: "a", value: 1 });
      assert.equal(r.outcome, "failed");
      assert.match(r.error ?? "", /^UNREACHABLE: /);
    } finally {
      c.close();
    }
  });

  it("a save or cas that gets no answer, or whose connection dies after sending, is unknown", async () => {
    const sockets: Socket[] = [];
    // Accepts and never answers.
    const silent = createServer((sock) => sockets.push(sock));
    // Accepts, reads the request, then drops the connection.
    const dropper = createServer((sock) => sock.once("data", () => sock.destroy()));
    const silentPort = await listen(silent);
    const dropperPort = await listen(dropper);
    const a = createNexusClient(`127.0.0.1:${silentPort}`, { timeoutMs: 300 });
    const b = createNexusClient(`127.0.0.1:${dropperPort}`, { timeoutMs: 2000 });
    try {
      const w = await perform(a, { kind: "write", key: "a", value: 1 });
      assert.equal(w.outcome, "unknown");
      assert.match(w.error ?? "", /^UNKNOWN_OUTCOME: /);
      const rd = await perform(a, { kind: "read", key: "a", mode: "lease" });
      assert.equal(rd.outcome, "unknown");
      const cas = await perform(b, { kind: "cas", key: "a", value: 2, expected: 1 });
      assert.equal(cas.outcome, "unknown");
      assert.match(cas.error ?? "", /^UNKNOWN_OUTCOME: /);
    } finally {
      a.close();
      b.close();
      for (const s of sockets) s.destroy();
      silent.close();
      dropper.close();
    }
  });
});
