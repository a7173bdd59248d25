/**
 * Before `nexus recover` (src/node/recover-check.ts): the members a node's data names (its WAL's
 * conf changes after the newest recorded snapshot, and that snapshot's members), and which
 * answers of theirs refuse the recovery. The real-process test is the third case of
 * test/e2e/majority-loss.test.ts.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PeerRefusedError } from "../../src/transport/http2-transport.js";
import { NexusError, isNexusError } from "../../src/errors/index.js";
import { encodeConfChange } from "../../src/raft/confchange/codec.js";
import type { ConfChange, Entry } from "../../src/raft/types.js";
import { EMPTY_CONF_STATE } from "../../src/raft/index.js";
import { Snapshotter } from "../../src/storage/snapshotter.js";
import { Wal } from "../../src/storage/wal.js";
import type { ProgressAsker } from "../../src/node/bootstrap-check.js";
import { confChangeContext, urlContext } from "../../src/node/member-directory.js";
import { encodeMemberProgress } from "../../src/node/member-progress.js";
import { checkNoLiveCluster, membersOnDisk } from "../../src/node/recover-check.js";

const root = mkdtempSync(join(tmpdir(), "nexus-recover-check-"));
after(() => rmSync(root, { recursive: true, force: true }));

const A = "000000000000000a";
const B = "000000000000000b";
const D = "000000000000000d";
const ME = "000000000000000c";
const URL: Record<string, string> = {
  [A]: "http://127.0.0.1:1",
  [B]: "http://127.0.0.1:2",
  [ME]: "http://127.0.0.1:3",
  [D]: "http://127.0.0.1:4",
};

function cc(index: number, changes: ConfChange["changes"], context: Uint8Array): Entry {
  const data = encodeConfChange({ transition: "auto", changes, context });
  return { index, term: 1, type: "conf-change", data };
}

const normal = (index: number): Entry => ({
  index,
  term: 1,
  type: "normal",
  data: new Uint8Array([1]),
});

async function members(dir: string): Promise<Record<string, string>> {
  const { wal, state } = await Wal.open(join(dir, "wal"));
  try {
    return Object.fromEntries(await membersOnDisk(wal, state, join(dir, "snap")));
  } finally {
    await wal.close();
  }
}

describe("membersOnDisk", () => {
  it("follows the WAL's conf changes: bootstrap URLs, a removal, several added at once", async () => {
    const dir = join(root, "wal-only");
    const { wal } = await Wal.open(join(dir, "wal"));
    await wal.save({ term: 1, vote: "", commit: 6 }, [
      cc(1, [{ type: "add-node", nodeId: A }], urlContext(URL[A]!)),
      cc(2, [{ type: "add-node", nodeId: B }], urlContext(URL[B]!)),
      cc(3, [{ type: "add-node", nodeId: ME }], urlContext(URL[ME]!)),
      normal(4),
      cc(5, [{ type: "remove-node", nodeId: B }], urlContext(URL[B]!)),
      cc(
        6,
        [
          { type: "add-learner", nodeId: D },
          { type: "add-node", nodeId: B },
        ],
        confChangeContext([
          { type: "add-learner", nodeId: D, url: URL[D]! },
          { type: "add-node", nodeId: B, url: URL[B]! },
        ]),
      ),
    ]);
    await wal.close();
    assert.deepEqual(await members(dir), { [A]: URL[A], [B]: URL[B], [ME]: URL[ME], [D]: URL[D] });
  });

  it("starts from the newest snapshot the WAL records, then its later conf changes", async () => {
    const dir = join(root, "with-snapshot");
    await new Snapshotter(join(dir, "snap")).save(
      {
        index: 10,
        term: 2,
        confState: { ...EMPTY_CONF_STATE, voters: [A, B, ME] },
        members: { [A]: URL[A]!, [B]: URL[B]!, [ME]: URL[ME]! },
      },
      (async function* () {
        yield new Uint8Array([1, 2, 3]);
      })(),
    );
    const { wal } = await Wal.open(join(dir, "wal"));
    await wal.save({ term: 2, vote: "", commit: 10 }, [], { index: 10, term: 2 });
    await wal.save({ term: 2, vote: "", commit: 11 }, [
      { ...cc(11, [{ type: "remove-node", nodeId: A }], urlContext(URL[A]!)), term: 2 },
    ]);
    await wal.close();
    assert.deepEqual(await members(dir), { [B]: URL[B], [ME]: URL[ME] });
  });
});

/** A transport whose peers answer as given: a leader's view, or an error to reject with. */
function fake(answers: Record<string, "leader" | Error>): ProgressAsker & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    addPeer: () => undefined,
    requestProgress: (peer) => {
      asked.push(peer);
      const a = answers[peer] ?? new NexusError("UNREACHABLE", `${peer} does not answer`);
      if (a instanceof Error) return Promise.reject(a);
      return Promise.resolve(
        encodeMemberProgress({ leader: peer, term: 3, lastIndex: 9, joint: false, members: [] }),
      );
    },
  };
}

function check(t: ProgressAsker): Promise<void> {
  return checkNoLiveCluster({
    nodeId: ME,
    nodeUrl: URL[ME]!,
    members: new Map([A, B, ME].map((id) => [id, URL[id]!])),
    clusterName: "nexus",
    timeoutMs: 100,
    transport: t,
  });
}

describe("checkNoLiveCluster", () => {
  it("https:// members without the peer TLS files: refused before asking (they would all look lost)", async () => {
    const t = fake({});
    await assert.rejects(
      checkNoLiveCluster({
        nodeId: ME,
        nodeUrl: "https://127.0.0.1:3",
        members: new Map([
          [A, "https://127.0.0.1:1"],
          [B, "https://127.0.0.1:2"],
          [ME, "https://127.0.0.1:3"],
        ]),
        clusterName: "nexus",
        timeoutMs: 100,
        transport: t,
      }),
      (e: unknown) =>
        isNexusError(e, "BAD_CONFIG") &&
        /https:\/\/127\.0\.0\.1:1, https:\/\/127\.0\.0\.1:2 are asked over peer TLS/.test(
          e.message,
        ) &&
        /-peer-cert-file/.test(e.message) &&
        /nothing was changed/.test(e.message),
    );
    assert.deepEqual(t.asked, []);
  });
  for (const c of [
    {
      name: "a leader answers: refused, naming it",
      answers: { [A]: "leader" as const },
      refused: /still has a leader \(http:\/\/127\.0\.0\.1:1\)/,
    },
    {
      name: "a member answers that it does not lead: refused, naming it",
      answers: { [B]: new NexusError("NOT_LEADER", "not the leader") },
      refused: /http:\/\/127\.0\.0\.1:2 still runs as a member/,
    },
    { name: "no member answers: allowed", answers: {}, refused: undefined },
    {
      // Before: allowed. A forgotten -nexus-cluster-name, or a cluster that removed this node,
      // refuses the question while it runs: recover then made a second cluster beside it.
      name: "a member refuses the question (another cluster name, a removed sender): refused",
      answers: { [A]: new PeerRefusedError(URL[A]!, 403) },
      refused: /http:\/\/127\.0\.0\.1:1 \(answered HTTP 403\) still runs/,
    },
    {
      name: "a member that does not answer at all (connection refused, timeout): allowed",
      answers: { [A]: new NexusError("UNREACHABLE", "connect ECONNREFUSED") },
      refused: undefined,
    },
  ]) {
    it(c.name, async () => {
      const t = fake(c.answers);
      if (c.refused === undefined) await check(t);
      else {
        await assert.rejects(
          check(t),
          (e: unknown) =>
            isNexusError(e, "BAD_CONFIG") &&
            c.refused.test(e.message) &&
            /nothing was changed/.test(e.message),
        );
      }
      assert.deepEqual(t.asked.sort(), [A, B], "every other member asked, not this node");
    });
  }
});
