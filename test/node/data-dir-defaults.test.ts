/**
 * Where a library node keeps its data: `dataDir` (default ./nexus-data/<hex id>) holds wal/ and
 * snap/, the old logDir and snapDir options still win, and a node whose data is under a
 * temporary folder says so loudly at start.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { normalizeOptions, nodeDirName } from "../../src/node/options.js";
import { createReplicator } from "../../src/node/replicator.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { freePort } from "../free-port.js";
import { tempFolders } from "../../src/node/temp-dirs.js";

function lastingRoot(): string {
  const here = resolve(".");
  return tempFolders({ here }).length === 0 ? here : homedir();
}

const url = "http://127.0.0.1:19555";
const id = nodeIdOf(url);
const base = { nodeUrl: url, clusterUrls: [url], store: new MemoryStore() };

describe("the data folders of a library node", () => {
  for (const c of [
    {
      name: "no folder given: ./nexus-data/<hex id>/wal and /snap",
      o: {},
      wal: resolve("nexus-data", id, "wal"),
      snap: resolve("nexus-data", id, "snap"),
    },
    {
      name: "dataDir given: its wal/ and snap/",
      o: { dataDir: "/var/lib/nexus" },
      wal: "/var/lib/nexus/wal",
      snap: "/var/lib/nexus/snap",
    },
    {
      name: "logDir and snapDir given: they win, as before",
      o: { dataDir: "/var/lib/nexus", logDir: "/srv/wal", snapDir: "/srv/snap" },
      wal: "/srv/wal",
      snap: "/srv/snap",
    },
  ]) {
    it(c.name, () => {
      const n = normalizeOptions({ ...base, ...c.o });
      assert.equal(n.logDir, join(c.wal, nodeDirName(id)));
      assert.equal(n.snapDir, join(c.snap, nodeDirName(id)));
    });
  }

  it("refuses an empty dataDir", () => {
    assert.throws(() => normalizeOptions({ ...base, dataDir: " " }), {
      code: "BAD_CONFIG",
      message: /dataDir/,
    });
  });

  it("warns at start when the data is under a temporary folder, and not otherwise", async () => {
    for (const [dir, warned] of [
      [mkdtempSync(join(tmpdir(), "nexus-datadir-")), true],
      // A lasting folder: the checkout, unless it is itself under a temporary folder (a CI clone
      // in /tmp), then the home folder.
      [mkdtempSync(join(lastingRoot(), ".nexus-datadir-")), false],
    ] as const) {
      const port = await freePort();
      const u = `http://127.0.0.1:${port}`;
      const warnings: string[] = [];
      const rep = createReplicator({
        nodeUrl: u,
        clusterUrls: [u],
        store: new MemoryStore(),
        dataDir: dir,
        logger: {
          debug() {},
          info() {},
          error() {},
          warn: (f: unknown, m?: string) => void warnings.push(typeof f === "string" ? f : m!),
        },
      });
      try {
        await rep.start();
        const w = warnings.filter((m) => m.startsWith("WARNING: this node's data is under"));
        assert.equal(w.length, warned ? 1 : 0, `${dir}: ${JSON.stringify(warnings)}`);
        if (warned) assert.match(w[0]!, /WAL .*\/wal\/node_\d+.*option dataDir/);
      } finally {
        await rep.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
