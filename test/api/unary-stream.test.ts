/**
 * Save and Load on the HTTP/2 stream API (src/api/unary-stream.ts): the same outcome, code for
 * code and with the same details, as the same call through the Connect router. The Connect path
 * is reached with the same body and `grpc-encoding: gzip` (uncompressed messages are valid in a
 * gzip call), which the stream path leaves to it. A real server on loopback, a fake Replicator.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { LoadRequestSchema, SaveRequestSchema } from "../../src/api/gen/nexus_pb.js";
import { startApiServer } from "../../src/api/server.js";
import type { ApiServer } from "../../src/api/server.js";
import { NexusError } from "../../src/errors/index.js";
import type { Replicator } from "../../src/node/replicator.js";

const enc = new TextEncoder();
const BIG = Buffer.alloc(4096, 0x61);

let loadsAborted = 0;

/** A Replicator that answers from the request: "fail" refuses, "hang" waits for its signal. */
const fake = {
  async saveWithIndex(
    data: Uint8Array,
    o: { signal?: AbortSignal },
  ): Promise<{ data: Uint8Array; index: number }> {
    const text = Buffer.from(data).toString();
    if (text === "fail") throw new NexusError("NOT_LEADER", "not the leader: ask another node");
    if (text === "hang") {
      return new Promise((_, reject) => {
        o.signal?.addEventListener("abort", () => reject(o.signal?.reason as Error));
      });
    }
    return { data: enc.encode(`saved ${text}`), index: 7 };
  },
  async load(data: Uint8Array, o: { signal?: AbortSignal }): Promise<Uint8Array> {
    if (Buffer.from(data).toString() === "hang") {
      return new Promise((_, reject) => {
        o.signal?.addEventListener("abort", () => {
          loadsAborted++;
          reject(o.signal?.reason as Error);
        });
      });
    }
    return BIG;
  },
} as unknown as Replicator;

interface Answer {
  readonly status: string;
  readonly message: string;
  readonly details: string;
  readonly encoding: string;
  readonly data: Buffer;
}

const envelope = (msg: Uint8Array, flags = 0): Buffer => {
  const h = Buffer.alloc(5);
  h[0] = flags;
  h.writeUInt32BE(msg.byteLength, 1);
  return Buffer.concat([h, msg]);
};
const save = (text: string): Buffer =>
  envelope(toBinary(SaveRequestSchema, create(SaveRequestSchema, { data: enc.encode(text) })));

describe("unary calls on the HTTP/2 stream API", () => {
  let api: ApiServer;
  let session: http2.ClientHttp2Session;
  before(async () => {
    api = await startApiServer({
      replicator: fake,
      host: "127.0.0.1",
      port: 0,
      maxRequestBytes: 1024,
    });
    session = http2.connect(`http://127.0.0.1:${api.port}`);
  });
  after(async () => {
    session.close();
    await api.close();
  });

  function call(
    method: string,
    body: Buffer,
    headers: http2.OutgoingHttpHeaders = {},
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": `/nexus.api.Nexus/${method}`,
        "content-type": "application/grpc",
        "grpc-accept-encoding": "identity,gzip",
        te: "trailers",
        ...headers,
      });
      let h: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on("response", (x) => (h = x));
      req.on("trailers", (t) => (h = { ...h, ...t }));
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () =>
        resolve({
          status: String(h["grpc-status"]),
          message: String(h["grpc-message"] ?? ""),
          details: String(h["grpc-status-details-bin"] ?? ""),
          encoding: String(h["grpc-encoding"] ?? "identity"),
          data: Buffer.concat(chunks),
        }),
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  /** The message of a response body, decompressed when flagged. */
  const messageOf = (a: Answer): Buffer => {
    const m = a.data.subarray(5);
    return (a.data[0]! & 1) === 1 ? gunzipSync(m) : m;
  };

  for (const c of [
    { name: "a save that succeeds", method: "Save", body: save("x"), want: Code[0] },
    { name: "a refused save, with its details", method: "Save", body: save("fail") },
    { name: "no message", method: "Save", body: Buffer.alloc(0) },
    { name: "an incomplete envelope", method: "Save", body: save("x").subarray(0, 8) },
    { name: "a header cut short", method: "Save", body: Buffer.from([0, 0]) },
    { name: "two messages", method: "Save", body: Buffer.concat([save("a"), save("b")]) },
    {
      name: "a message then a cut one",
      method: "Save",
      body: Buffer.concat([save("a"), save("b").subarray(0, 6)]),
    },
    { name: "not protobuf", method: "Save", body: envelope(Buffer.from([0x07])) },
    {
      name: "a message over the size limit",
      method: "Save",
      body: envelope(Buffer.alloc(80 * 1024, 1)),
    },
    {
      name: "a deadline too long",
      method: "Save",
      body: save("x"),
      headers: { "grpc-timeout": "99999999H" },
    },
    {
      name: "a deadline that does not parse",
      method: "Save",
      body: save("x"),
      headers: { "grpc-timeout": "soon" },
    },
    {
      name: "a deadline that passes while the save runs",
      method: "Save",
      body: save("hang"),
      headers: { "grpc-timeout": "50m" },
    },
    {
      name: "a load",
      method: "Load",
      body: envelope(toBinary(LoadRequestSchema, create(LoadRequestSchema, {}))),
    },
  ] as const) {
    it(`${c.name}: the same outcome on both paths`, async () => {
      const headers = "headers" in c ? c.headers : {};
      const stream = await call(c.method, c.body, headers);
      const connect = await call(c.method, c.body, { ...headers, "grpc-encoding": "gzip" });
      assert.equal(stream.status, connect.status, JSON.stringify({ stream, connect }));
      assert.equal(
        decodeURIComponent(stream.message),
        decodeURIComponent(connect.message),
        "grpc-message",
      );
      assert.equal(stream.details, connect.details, "grpc-status-details-bin");
      if (stream.status === "0") assert.deepEqual(messageOf(stream), messageOf(connect));
      if ("want" in c) assert.equal(stream.status, "0");
    });
  }

  it("the hot calls' responses are not compressed (Connect would gzip a large one)", async () => {
    const body = envelope(toBinary(LoadRequestSchema, create(LoadRequestSchema, {})));
    const stream = await call("Load", body);
    assert.equal(stream.status, "0");
    assert.equal(stream.encoding, "identity");
    assert.equal(stream.data[0], 0, "the message is not flagged compressed");
    const connect = await call("Load", body, { "grpc-encoding": "gzip" });
    assert.equal(connect.encoding, "gzip", "the Connect path compresses it: the paths differ");
  });

  it("a message flagged compressed in a call without grpc-encoding is INVALID_ARGUMENT", async () => {
    const r = await call("Save", envelope(Buffer.from([1, 2, 3]), 1));
    assert.equal(r.status, String(Code.InvalidArgument));
  });

  it("a load waiting past the call's grpc-timeout is ended with it (a min-index wait does not outlive the call)", async () => {
    // Before: the service did not pass the call's signal to load(); the wait went on until the
    // node's own replication timeout and the call was never answered in time.
    const before = loadsAborted;
    const body = envelope(
      toBinary(LoadRequestSchema, create(LoadRequestSchema, { data: enc.encode("hang") })),
    );
    const r = await Promise.race([
      call("Load", body, { "grpc-timeout": "100m" }),
      new Promise<undefined>((res) => setTimeout(() => res(undefined), 3000)),
    ]);
    assert.notEqual(r, undefined, "no answer within 3 s");
    assert.equal(r!.status, String(Code.DeadlineExceeded));
    assert.equal(loadsAborted, before + 1);
  });

  it("a call whose request never ends is answered DEADLINE_EXCEEDED at its grpc-timeout", async () => {
    // Before: the deadline only aborted a handler that had not started; the stream stayed open
    // with what it had buffered until the client gave up.
    const answer = new Promise<string>((resolve, reject) => {
      const req = session.request({
        ":method": "POST",
        ":path": "/nexus.api.Nexus/Save",
        "content-type": "application/grpc",
        "grpc-timeout": "200m",
        te: "trailers",
      });
      let status = "";
      req.on("response", (h) => (status = String(h["grpc-status"] ?? status)));
      req.on("trailers", (t) => (status = String(t["grpc-status"] ?? status)));
      req.on("end", () => resolve(status));
      req.on("close", () => resolve(status));
      req.on("error", reject);
      req.write(save("x").subarray(0, 3)); // and never end
      req.resume();
    });
    const r = await Promise.race([
      answer,
      new Promise<string>((res) => setTimeout(() => res("no answer within 3 s"), 3000)),
    ]);
    assert.equal(r, String(Code.DeadlineExceeded));
  });

  it("the server still answers after a client cancels a call", async () => {
    const req = session.request({
      ":method": "POST",
      ":path": "/nexus.api.Nexus/Save",
      "content-type": "application/grpc",
      te: "trailers",
    });
    req.on("error", () => undefined);
    req.end(save("hang"));
    await new Promise((r) => setTimeout(r, 20));
    req.close(http2.constants.NGHTTP2_CANCEL);
    const r = await call("Save", save("after"));
    assert.equal(r.status, "0");
  });
});
