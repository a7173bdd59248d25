/**
 * Progress a person sees for long work: a snapshot being restored (bytes, percent, rate, time
 * left), a consistency digest that runs long, and a member catching up with the leader.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProgressBoard, longTaskFields, storeWithProgress } from "../../src/node/progress-board.js";
import { snapshotName } from "../../src/storage/snapshotter.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import type { LongTask } from "../../src/node/progress-board.js";
import { CatchUpLog } from "../../src/node/catch-up-log.js";
import { pendingDigest } from "../../src/store/store.js";
import type { MemberInfo } from "../../src/node/replicator.js";
import type { NodeId } from "../../src/raft/types.js";

function recorder(): {
  lines: { msg: string; f: Record<string, unknown> }[];
  logger: ConstructorParameters<typeof ProgressBoard>[0];
} {
  const lines: { msg: string; f: Record<string, unknown> }[] = [];
  const log = (f: unknown, m?: string): void =>
    void lines.push(
      typeof f === "string" ? { msg: f, f: {} } : { msg: m!, f: f as Record<string, unknown> },
    );
  return { lines, logger: { debug: log, info: log, warn: log, error: log } };
}

describe("ProgressBoard", () => {
  it("logs a restore's bytes, percent, rate and time left, and lists it while it runs", async () => {
    const { lines, logger } = recorder();
    const board = new ProgressBoard(logger, 0);
    const body = (async function* () {
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 5));
        yield new Uint8Array(250);
      }
    })();
    const seen: number[] = [];
    for await (const chunk of board.restoring(
      { index: 42, term: 3 },
      body,
      Promise.resolve(1000),
    )) {
      const t = board.list();
      assert.equal(t.length, 1);
      assert.equal(t[0]!.kind, "snapshot-restore");
      seen.push(t[0]!.bytes!);
      assert.equal(chunk.byteLength, 250);
    }
    assert.deepEqual(seen, [250, 500, 750, 1000]);
    assert.deepEqual(board.list(), [], "gone once the stream ended");
    const restoring = lines.filter((l) => l.msg === "snapshot restoring");
    assert.ok(restoring.length >= 3, JSON.stringify(lines));
    const last = restoring.at(-1)!.f;
    assert.equal(last["index"], 42);
    assert.equal(last["totalBytes"], 1000);
    assert.ok(Number(last["percent"]) >= 75);
    assert.ok(Number(last["bytesPerSecond"]) > 0);
    assert.ok(typeof last["secondsLeft"] === "number");
  });

  it("logs a digest that runs longer than the interval, and its end", async () => {
    const { lines, logger } = recorder();
    const board = new ProgressBoard(logger, 20);
    let finish: (d: string) => void = () => {};
    const p = board.digesting(
      pendingDigest({ index: 7, term: 1 }, new Promise<string>((r) => (finish = r))),
    );
    assert.equal(board.list()[0]?.kind, "consistency-digest");
    await new Promise((r) => setTimeout(r, 70));
    finish("abc");
    assert.equal(await p.digest, "abc");
    await new Promise((r) => setImmediate(r));
    assert.ok(lines.some((l) => l.msg === "consistency digest running" && l.f["index"] === 7));
    assert.ok(lines.some((l) => l.msg === "consistency digest done"));
    assert.deepEqual(board.list(), []);
  });

  it("says no percent while the size is unknown", () => {
    const f = longTaskFields(
      {
        kind: "snapshot-restore",
        index: 1,
        bytes: 10,
        totalBytes: undefined,
        startedAt: Date.now() - 1000,
      },
      Date.now(),
    );
    assert.equal(f["percent"], undefined);
    assert.equal(f["bytes"], 10);
  });
});

describe("storeWithProgress", () => {
  it("puts a restore on the board with its file's size, and passes everything else through", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-progress-"));
    try {
      writeFileSync(join(dir, snapshotName(2, 9)), new Uint8Array(800));
      const { logger } = recorder();
      const board = new ProgressBoard(logger);
      const seen: LongTask[][] = [];
      const inner = new MemoryStore();
      const fake = Object.assign(Object.create(inner) as MemoryStore, {
        async restore(_p: unknown, stream: AsyncIterable<Uint8Array>): Promise<void> {
          for await (const c of stream) {
            await new Promise((r) => setTimeout(r, 5));
            void c;
            seen.push(board.list());
          }
        },
      });
      const store = storeWithProgress(fake, board, dir);
      assert.equal(store.kind, inner.kind);
      await store.restore(
        { index: 9, term: 2 },
        (async function* () {
          yield new Uint8Array(400);
          yield new Uint8Array(400);
        })(),
      );
      assert.equal(seen.length, 2);
      assert.equal(seen[1]![0]!.kind, "snapshot-restore");
      assert.equal(seen[1]![0]!.bytes, 800);
      assert.equal(seen[1]![0]!.totalBytes, 800);
      assert.deepEqual(board.list(), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("CatchUpLog", () => {
  const self = "000000000000000a" as NodeId;
  const m = (match: number, lag: number, reachable = true): MemberInfo[] => [
    {
      id: self,
      url: "http://a",
      role: "leader",
      progress: { reachable: true, match: 5000, lag: 0 },
    },
    {
      id: "000000000000000b" as NodeId,
      url: "http://b",
      role: "learner",
      progress: { reachable, match, lag },
    },
  ];

  it("logs a member gaining on the leader with rate and time left, then once caught up", () => {
    const { lines, logger } = recorder();
    const log = new CatchUpLog(logger, 100);
    log.sample(self, m(0, 5000), 0);
    assert.equal(lines.length, 0, "the first look only notes it");
    log.sample(self, m(1000, 4000), 5000);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.msg, "member catching up");
    assert.equal(lines[0]!.f["entriesPerSecond"], 200);
    assert.equal(lines[0]!.f["secondsLeft"], 20);
    log.sample(self, m(1000, 4000), 10_000);
    assert.equal(lines.length, 1, "not moving: not logged again");
    log.sample(self, m(4950, 50), 15_000);
    assert.equal(lines.at(-1)!.msg, "member caught up");
    assert.equal(lines.at(-1)!.f["seconds"], 15);
    log.sample(self, m(4990, 10), 20_000);
    assert.equal(lines.length, 2, "caught up is said once");
  });

  it("does not log a member that is unreachable", () => {
    const { lines, logger } = recorder();
    const log = new CatchUpLog(logger, 100);
    log.sample(self, m(0, 5000, false), 0);
    log.sample(self, m(10, 4990, false), 5000);
    assert.equal(lines.length, 0);
  });
});
