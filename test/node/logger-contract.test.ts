/**
 * The logger contract is pino's: `(fields, msg)` or `(msg)`. A pino logger is accepted as it is
 * and the runtime's fields reach its output; a console-style `(msg, fields)` function is rejected
 * by the compiler (the `@ts-expect-error` lines below are checked by `npm run typecheck`: if such
 * a logger ever type-checks again, the typecheck fails).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import type { NexusLogFn, NexusLogger } from "../../src/index.js";
import { createReplicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { until } from "./helpers.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

/** The old, console-style contract: message first, fields second. */
const consoleStyle = (msg: string, fields?: Record<string, unknown>): void => void [msg, fields];

// A pino logger is a NexusLogger as it is.
export const fromPino: NexusLogger = pino({ enabled: false });

// @ts-expect-error a (msg, fields) function would drop pino's fields: it is not a NexusLogger level
export const fromConsoleStyle: NexusLogFn = consoleStyle;

export const oneLevelConsoleStyle: NexusLogger = {
  debug() {},
  info() {},
  // @ts-expect-error one console-style level is enough to be rejected
  warn: consoleStyle,
  error() {},
};

describe("the NexusLogger contract", () => {
  it("a pino logger given to createReplicator receives the runtime's structured fields", async () => {
    const root = tempDir("nexus-logger-");
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString("utf8").split("\n")) {
          if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
        }
        done();
      },
    });
    const url = `http://127.0.0.1:${await freePort()}`;
    const rep = createReplicator({
      nodeUrl: url,
      clusterUrls: [url],
      store: new MemoryStore(),
      logDir: join(root, "logs"),
      snapDir: join(root, "snap"),
      heartbeatTickMs: 20,
      electionTickMs: 200,
      logger: pino({ level: "debug" }, sink),
    });
    await rep.start();
    try {
      await until(() => rep.status().role === "leader", 10_000, "the single node to lead");
      await until(
        () => lines.some((l) => l["msg"] === "became leader" && l["state"] === "leader"),
        10_000,
        "the 'became leader' line with its fields",
      );
      const line = lines.find((l) => l["msg"] === "became leader" && l["state"] === "leader")!;
      assert.equal(line["leader"], rep.status().id);
      assert.equal(line["level"], 30);
      // The state changes an operator cares about, once each, at info (30), with their figures.
      await until(
        () => lines.some((l) => l["msg"] === "snapshot taken"),
        10_000,
        "the snapshot taken after the first member joined",
      );
      const added = lines.filter((l) => l["msg"] === "voter added or promoted");
      assert.equal(added.length, 1);
      assert.equal(added[0]!["member"], rep.status().id);
      assert.equal(added[0]!["url"], url);
      const snap = lines.find((l) => l["msg"] === "snapshot taken")!;
      assert.equal(snap["level"], 30);
      assert.equal(typeof snap["bytes"], "number");
      assert.ok((snap["bytes"] as number) > 0);
      assert.equal(typeof snap["ms"], "number");
      assert.equal(lines.filter((l) => l["msg"] === "became leader").length, 1);
    } finally {
      await rep.stop();
    }
  });
});
