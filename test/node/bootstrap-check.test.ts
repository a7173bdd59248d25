/**
 * checkNotKnownToCluster (src/node/bootstrap-check.ts) against a fake transport: which answers
 * refuse a node with no WAL, and which let it start. The real-process test is
 * bootstrap-check-process.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { NexusError, isNexusError } from "../../src/errors/index.js";
import { checkNotKnownToCluster } from "../../src/node/bootstrap-check.js";
import type { ProgressAsker } from "../../src/node/bootstrap-check.js";
import { encodeMemberProgress } from "../../src/node/member-progress.js";
import type { MemberProgressView } from "../../src/node/member-progress.js";
import { SILENT } from "../../src/node/options.js";

const root = mkdtempSync(join(tmpdir(), "nexus-bootstrap-check-"));
after(() => rmSync(root, { recursive: true, force: true }));

const ME = "000000000000000c";
const A = "000000000000000a";
const B = "000000000000000b";
const PEERS = [
  { id: A, url: "http://127.0.0.1:1" },
  { id: B, url: "http://127.0.0.1:2" },
  { id: ME, url: "http://127.0.0.1:3" },
];

function view(match: number | undefined): MemberProgressView {
  return {
    leader: A,
    term: 4,
    lastIndex: 20,
    joint: false,
    members: [
      {
        id: A,
        url: PEERS[0]!.url,
        role: "leader",
        progress: { reachable: true, match: 20, lag: 0 },
      },
      {
        id: ME,
        url: PEERS[2]!.url,
        role: "follower",
        ...(match === undefined ? {} : { progress: { reachable: false, match, lag: 20 - match } }),
      },
    ],
  };
}

/** A transport whose peers answer as given: bytes, or an error to reject with. */
function fake(answers: Record<string, Uint8Array | Error>): ProgressAsker & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    addPeer: () => undefined,
    requestProgress: (peer) => {
      asked.push(peer);
      const a = answers[peer] ?? new NexusError("UNREACHABLE", `${peer} does not answer`);
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
  };
}

async function check(t: ProgressAsker, logDir = join(root, "absent")): Promise<void> {
  await checkNotKnownToCluster({
    nodeId: ME,
    nodeUrl: PEERS[2]!.url,
    logDir,
    peers: PEERS,
    transport: t,
    timeoutMs: 100,
    logger: SILENT,
  });
}

describe("checkNotKnownToCluster", () => {
  it("refuses (BAD_CONFIG) when a leader lists this node with match > 0, saying how to rejoin", async () => {
    const t = fake({ [A]: encodeMemberProgress(view(7)), [B]: new NexusError("NOT_LEADER", "b") });
    await assert.rejects(check(t), (err: unknown) => {
      assert.ok(isNexusError(err, "BAD_CONFIG"), String(err));
      assert.match(err.message, /acknowledged entries up to index 7/);
      assert.match(err.message, /removeNode http:\/\/127\.0\.0\.1:3/);
      assert.match(err.message, /new data directory/);
      return true;
    });
    assert.deepEqual(t.asked.sort(), [A, B], "every peer but itself is asked");
  });

  const starts: readonly [string, Record<string, Uint8Array | Error>][] = [
    [
      "a leader lists it with match 0 (a new cluster's late member)",
      { [A]: encodeMemberProgress(view(0)) },
    ],
    ["a leader lists it without progress", { [A]: encodeMemberProgress(view(undefined)) }],
    [
      "it is not a member (a node not added yet)",
      { [A]: encodeMemberProgress({ ...view(0), members: view(0).members.slice(0, 1) }) },
    ],
    [
      "no peer answers, or only followers",
      { [A]: new NexusError("UNREACHABLE", "a"), [B]: new NexusError("NOT_LEADER", "b") },
    ],
    ["an answer that is not a member list", { [A]: new TextEncoder().encode("{nope") }],
  ];
  for (const [name, answers] of starts) {
    it(`lets the node start when ${name}`, async () => {
      await check(fake(answers));
    });
  }

  it("asks nobody when the WAL directory exists (its own state decides)", async () => {
    const dir = join(root, "present");
    mkdirSync(dir);
    const t = fake({ [A]: encodeMemberProgress(view(7)) });
    await check(t, dir);
    assert.deepEqual(t.asked, []);
  });
});
