/**
 * The member directory (src/node/member-directory.ts): URLs from conf change contexts (one URL,
 * the original's form, or a JSON map for several), members leaving with their transport peers
 * once no configuration names them, a snapshot's membership replacing ours, and the
 * configuration in effect at an index.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MemberDirectory, confChangeContext } from "../../src/node/member-directory.js";
import { SILENT } from "../../src/node/options.js";
import type { ConfChange, ConfState } from "../../src/raft/types.js";

function conf(voters: string[], votersOutgoing: string[] = []): ConfState {
  return { voters, learners: [], votersOutgoing, learnersNext: [], autoLeave: false };
}

function directory(): { dir: MemberDirectory; peers: Map<string, string> } {
  const peers = new Map<string, string>();
  const dir = new MemberDirectory(
    "a",
    { addPeer: (id, url) => peers.set(id, url), removePeer: (id) => peers.delete(id) },
    SILENT,
  );
  return { dir, peers };
}

function change(changes: ConfChange["changes"], urls: Record<string, string>): ConfChange {
  const withUrls = changes.map((c) => ({ ...c, url: urls[c.nodeId] ?? "" }));
  return { transition: "auto", changes, context: confChangeContext(withUrls) };
}

describe("member directory", () => {
  it("a single change's context is the URL itself (the original's form)", () => {
    const ctx = confChangeContext([{ type: "add-node", nodeId: "b", url: "http://b:1" }]);
    assert.equal(new TextDecoder().decode(ctx), "http://b:1");
  });

  it("members join with their URLs and transport peers, never a peer for itself", () => {
    const { dir, peers } = directory();
    dir.applyConfChange(
      1,
      change([{ type: "add-node", nodeId: "a" }], { a: "http://a:1" }),
      conf(["a"]),
    );
    const both = [
      { type: "add-node", nodeId: "b" },
      { type: "add-learner", nodeId: "c" },
    ] as const;
    const cs = { ...conf(["a", "b"]), learners: ["c"] };
    dir.applyConfChange(2, change(both, { b: "http://b:1", c: "http://c:1" }), cs);
    assert.deepEqual(
      [...dir.urls],
      [
        ["a", "http://a:1"],
        ["b", "http://b:1"],
        ["c", "http://c:1"],
      ],
    );
    assert.deepEqual([...peers.keys()].sort(), ["b", "c"]);
    assert.deepEqual(dir.confAt(1)?.cs, conf(["a"]));
    assert.deepEqual(dir.confAt(5)?.members, { a: "http://a:1", b: "http://b:1", c: "http://c:1" });
    assert.equal(dir.confAt(0), undefined);
  });

  it("a voter removed by a joint change stays until no configuration names it", () => {
    const { dir, peers } = directory();
    dir.install(10, conf(["a", "b", "c"]), { a: "http://a", b: "http://b", c: "http://c" });
    const remove = change(
      [
        { type: "remove-node", nodeId: "c" },
        { type: "add-node", nodeId: "d" },
      ],
      {
        d: "http://d",
      },
    );
    dir.applyConfChange(11, remove, conf(["a", "b", "d"], ["a", "b", "c"]));
    assert.ok(dir.urls.has("c") && peers.has("c"), "still in the outgoing half");
    dir.applyConfChange(12, change([], {}), conf(["a", "b", "d"]));
    assert.ok(!dir.urls.has("c") && !peers.has("c"), "gone once the joint configuration is left");
    assert.equal(peers.get("d"), "http://d");
  });

  it("a snapshot's membership replaces ours, and forgets the older configurations", () => {
    const { dir, peers } = directory();
    dir.install(10, conf(["a", "b"]), { a: "http://a", b: "http://b" });
    dir.install(20, conf(["a", "e"]), { a: "http://a", e: "http://e" });
    assert.deepEqual([...peers.keys()].sort(), ["e"]);
    assert.equal(dir.confAt(15), undefined);
    assert.deepEqual(dir.oldest()?.members, { a: "http://a", e: "http://e" });
  });

  it("a peer is reachable while heard from within the window", () => {
    const { dir } = directory();
    dir.heard("b", 1000);
    assert.ok(dir.heardWithin("b", 1500, 500));
    assert.ok(!dir.heardWithin("b", 1501, 500));
    assert.ok(!dir.heardWithin("c", 1000, 500));
  });
});
