import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { streamBackup } from "../../src/api/backup-client.js";
import type { BackupEvent } from "../../src/api/backup-client.js";
import { isNexusError } from "../../src/errors/index.js";
import { nodeIdOf } from "../../src/node/node-id.js";
import { freePort } from "../free-port.js";
import { startSingleNode } from "./single-node.js";

describe("gRPC service nexus.api.NexusBackup", () => {
  it("streams a header (store, cluster, index, term, members, version), the store's backup and a SHA-256 trailer", async () => {
    const {
      rep,
      url,
      address: addr,
      stop,
    } = await startSingleNode("nexus-api-backup-", {
      clusterName: "backup-test",
    });
    try {
      await rep.save("create table t (k integer primary key, v blob)");
      // Over 1 MiB of data: several chunks on the wire.
      for (let i = 0; i < 3; i++) await rep.save(`insert into t (v) values (randomblob(500000))`);
      const events: BackupEvent[] = [];
      for await (const ev of streamBackup(addr)) events.push(ev);
      const first = events[0]!;
      const last = events.at(-1)!;
      assert.equal(first.kind, "header");
      assert.equal(last.kind, "trailer");
      if (first.kind !== "header" || last.kind !== "trailer") return;
      const st = rep.status();
      assert.equal(first.header.storeKind, "sqlite");
      assert.equal(first.header.clusterName, "backup-test");
      // The barrier: every save acknowledged before is in it (the last one's index at least).
      assert.ok(
        first.header.index >= 5 && first.header.index <= st.applied,
        JSON.stringify(first.header),
      );
      assert.ok(first.header.term >= 1);
      assert.deepEqual(first.header.members, [{ id: nodeIdOf(url), url, role: "voter" }]);
      assert.match(first.header.nexusVersion, /^\d+\.\d+\.\d+/);
      const data = events.filter((e) => e.kind === "data");
      assert.ok(data.length >= 2, `${data.length} chunks`);
      const hash = createHash("sha256");
      let n = 0;
      for (const d of data) {
        if (d.kind !== "data") continue;
        assert.ok(d.data.length <= 1024 * 1024);
        hash.update(d.data);
        n += d.data.length;
      }
      assert.ok(n > 1_500_000, `${n} bytes`);
      assert.equal(last.dataBytes, n);
      assert.ok(hash.digest().equals(Buffer.from(last.sha256)));
      // The data is a SQLite database file.
      const d0 = data[0]!;
      assert.ok(
        d0.kind === "data" && Buffer.from(d0.data.subarray(0, 15)).toString() === "SQLite format 3",
      );
    } finally {
      await stop();
    }
  });

  it("an address where nothing answers is UNREACHABLE", async () => {
    const port = await freePort();
    await assert.rejects(
      async () => {
        for await (const ev of streamBackup(`127.0.0.1:${port}`)) void ev;
      },
      (err: unknown) => isNexusError(err, "UNREACHABLE"),
    );
  });
});
