/**
 * A one-node cluster on SQLite with its gRPC service on a free loopback port, for the tests of the
 * gRPC service. Its folder goes when the test file ends.
 */
import { join } from "node:path";
import { startApiServer } from "../../src/api/server.js";
import type { ApiServer } from "../../src/api/server.js";
import type { ReplicatorOptions } from "../../src/node/options.js";
import { createReplicator } from "../../src/node/replicator.js";
import type { Replicator } from "../../src/node/replicator.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import { freePort } from "../free-port.js";
import { tempDir } from "../temp-dir.js";

export interface SingleNode {
  readonly rep: Replicator;
  readonly api: ApiServer;
  /** The node's URL (its id comes from it). */
  readonly url: string;
  /** The gRPC service's `host:port`. */
  readonly address: string;
  /** Closes the gRPC service, then stops the node. */
  stop(): Promise<void>;
}

/**
 * Starts a node alone in its cluster (heartbeat 20 ms, election 200 ms, `options` on top) on a
 * SQLite store in a new folder named from `prefix`, and a gRPC service over it that takes requests
 * of up to 1 MiB. Does not wait for the node to lead.
 */
export async function startSingleNode(
  prefix: string,
  options: Partial<ReplicatorOptions> = {},
): Promise<SingleNode> {
  const dir = tempDir(prefix);
  const url = `http://127.0.0.1:${await freePort()}`;
  const rep = createReplicator({
    nodeUrl: url,
    clusterUrls: [url],
    store: new SqliteStore({ path: join(dir, "db.sqlite") }),
    logDir: join(dir, "logs"),
    snapDir: join(dir, "snap"),
    heartbeatTickMs: 20,
    electionTickMs: 200,
    ...options,
  });
  await rep.start();
  const api = await startApiServer({
    replicator: rep,
    host: "127.0.0.1",
    port: 0,
    maxRequestBytes: 1024 * 1024,
  });
  return {
    rep,
    api,
    url,
    address: `127.0.0.1:${api.port}`,
    stop: async () => {
      await api.close();
      await rep.stop();
    },
  };
}
