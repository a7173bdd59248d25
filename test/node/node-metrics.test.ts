/**
 * SnapshotTransfers: snapshot streams in flight are listed with their bytes so far (and, when
 * sending a file, its size as the total), and the sink hears of each once it ends, whole or cut.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NOOP_NODE_METRICS, SnapshotTransfers } from "../../src/node/node-metrics.js";
import type { NodeMetrics, SnapshotTransfer } from "../../src/node/node-metrics.js";
import type { NexusLogger } from "../../src/node/options.js";
import type { Message } from "../../src/raft/types.js";

function snapMessage(from: string, to: string, name: string): Message {
  return {
    type: "snap",
    from,
    to,
    term: 2,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: new Uint8Array(0),
    snapshot: {
      data: new TextEncoder().encode(name),
      metadata: {
        index: 42,
        term: 2,
        confState: {
          voters: [],
          learners: [],
          votersOutgoing: [],
          learnersNext: [],
          autoLeave: false,
        },
      },
    },
  } as unknown as Message;
}

async function* chunks(n: number, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 5));
    yield new Uint8Array(size);
  }
}

describe("SnapshotTransfers", () => {
  it("lists a stream in flight with its progress and reports it once it ends", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-transfers-"));
    writeFileSync(join(dir, "0000000000000002-000000000000002a.snap"), new Uint8Array(4000));
    const ended: { t: SnapshotTransfer; ok: boolean }[] = [];
    const sink: NodeMetrics = {
      ...NOOP_NODE_METRICS,
      snapshotTransferred: (t, _ms, ok) => ended.push({ t, ok }),
    };
    const logs: { fields: Record<string, unknown>; msg: string }[] = [];
    const log = (a: Readonly<Record<string, unknown>> | string, msg?: string): void =>
      void logs.push(
        typeof a === "string" ? { fields: {}, msg: a } : { fields: { ...a }, msg: msg ?? "" },
      );
    const logger = { debug: log, info: log, warn: log, error: log } as NexusLogger;
    const tr = new SnapshotTransfers(() => sink, dir, logger, 1);
    const m = snapMessage("a", "b", "0000000000000002-000000000000002a.snap");
    const it = tr.track("send", m, chunks(4, 1000))[Symbol.asyncIterator]();
    await it.next();
    await it.next();
    const [now] = tr.list();
    assert.equal(now!.direction, "send");
    assert.equal(now!.peer, "b");
    assert.equal(now!.index, 42);
    assert.equal(now!.bytes, 2000);
    assert.equal(now!.totalBytes, 4000);
    while (!(await it.next()).done);
    assert.deepEqual(tr.list(), []);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.ok, true);
    assert.equal(ended[0]!.t.bytes, 4000);
    // Progress at most every 1 ms here (5 s by default); the end is the transport's to log
    // ("snapshot sent" once the peer took it), so it is not logged twice.
    assert.ok(logs.some((l) => l.msg === "snapshot sending" && l.fields["percent"] === 50));
    const last = logs.at(-1)!;
    assert.equal(last.msg, "snapshot sending");
    assert.equal(last.fields["peer"], "b");
    assert.ok(!logs.some((l) => l.msg === "snapshot sent"));
  });

  it("reports a stream cut short as not ok, with the bytes that passed", async () => {
    const ended: { t: SnapshotTransfer; ok: boolean }[] = [];
    const sink: NodeMetrics = {
      ...NOOP_NODE_METRICS,
      snapshotTransferred: (t, _ms, ok) => ended.push({ t, ok }),
    };
    const tr = new SnapshotTransfers(() => sink, tmpdir());
    const it = tr.track("receive", snapMessage("a", "b", "x.snap"), chunks(10, 100));
    let seen = 0;
    for await (const chunk of it) {
      seen += chunk.byteLength;
      if (seen >= 300) break;
    }
    assert.deepEqual(tr.list(), []);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.ok, false);
    assert.equal(ended[0]!.t.peer, "a");
    assert.equal(ended[0]!.t.bytes, 300);
    assert.equal(ended[0]!.t.totalBytes, undefined);
  });
});
