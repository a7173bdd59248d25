/**
 * Members named by unapplied conf changes in the log (src/node/log-members.ts): they get a
 * transport peer and are admitted until the entry is applied or replaced by a conflicting
 * leader's entries or a snapshot; a member the applied configuration names keeps its peer.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogMembers } from "../../src/node/log-members.js";
import { MemberDirectory, confChangeContext } from "../../src/node/member-directory.js";
import { SILENT } from "../../src/node/options.js";
import { decodeConfChange, encodeConfChange } from "../../src/raft/confchange/codec.js";
import type { ConfChange, Entry } from "../../src/raft/types.js";

function confEntry(
  index: number,
  changes: { type: ConfChange["changes"][number]["type"]; nodeId: string; url: string }[],
): Entry {
  const cc: ConfChange = {
    transition: "auto",
    changes: changes.map(({ type, nodeId }) => ({ type, nodeId })),
    context: confChangeContext(changes),
  };
  return { index, term: 1, type: "conf-change", data: encodeConfChange(cc) };
}

function normal(index: number): Entry {
  return { index, term: 1, type: "normal", data: new Uint8Array([1]) };
}

function setup(applied: Map<string, string> = new Map()) {
  const peers = new Map<string, string>();
  const log = new LogMembers(
    "self",
    { addPeer: (id, url) => peers.set(id, url), removePeer: (id) => peers.delete(id) },
    applied,
    decodeConfChange,
  );
  return { log, peers };
}

describe("log members", () => {
  it("a member an appended conf change adds is admitted with a peer until that entry is applied", () => {
    const { log, peers } = setup();
    log.appended([normal(4), confEntry(5, [{ type: "add-node", nodeId: "d", url: "http://d:1" }])]);
    assert.equal(log.has("d"), true);
    assert.equal(peers.get("d"), "http://d:1");
    log.appliedThrough(4);
    assert.equal(log.has("d"), true, "not applied yet");
    log.appliedThrough(5);
    assert.equal(log.has("d"), false);
    assert.equal(peers.has("d"), false, "the directory decides once applied");
  });

  it("entries replaced by a conflicting leader's forget whom only they named", () => {
    const { log, peers } = setup();
    log.appended([confEntry(5, [{ type: "add-learner", nodeId: "d", url: "http://d:1" }])]);
    log.appended([confEntry(7, [{ type: "add-node", nodeId: "d", url: "http://d:2" }])]);
    assert.equal(peers.get("d"), "http://d:2");
    // Index 6 on replaced: d is still named by 5, with its URL there.
    log.appended([normal(6)]);
    assert.equal(log.has("d"), true);
    assert.equal(peers.get("d"), "http://d:1");
    log.appended([normal(5)]);
    assert.equal(log.has("d"), false);
    assert.equal(peers.has("d"), false);
  });

  it("a member the applied configuration names keeps its peer; removals, itself and URL-less changes name nobody", () => {
    const applied = new Map([["b", "http://b:1"]]);
    const { log, peers } = setup(applied);
    peers.set("b", "http://b:1");
    log.appended([
      confEntry(3, [
        { type: "add-node", nodeId: "b", url: "http://b:1" },
        { type: "remove-node", nodeId: "c", url: "" },
        { type: "add-node", nodeId: "self", url: "http://self:1" },
      ]),
    ]);
    assert.equal(log.has("b"), true);
    assert.equal(log.has("c"), false);
    assert.equal(log.has("self"), false);
    assert.equal(peers.has("self"), false);
    log.clear();
    assert.equal(log.has("b"), false);
    assert.equal(peers.get("b"), "http://b:1", "the applied member keeps its peer");
  });

  it("an undecodable conf-change entry names nobody and does not throw", () => {
    const { log } = setup();
    log.appended([
      { index: 2, term: 1, type: "conf-change", data: new Uint8Array([255, 255, 255]) },
    ]);
    assert.equal(log.has("d"), false);
  });
});

describe("log members with the member directory", () => {
  it("a member removed by an applied change and added again by an unapplied one keeps its peer", () => {
    const peers = new Map<string, string>();
    const set = {
      addPeer: (id: string, url: string) => void peers.set(id, url),
      removePeer: (id: string) => void peers.delete(id),
    };
    const dir = new MemberDirectory("self", set, SILENT);
    const conf = (voters: string[]) => ({
      voters,
      learners: [],
      votersOutgoing: [],
      learnersNext: [],
      autoLeave: false,
    });
    dir.install(1, conf(["self", "x", "y"]), {
      self: "http://s:1",
      x: "http://x:1",
      y: "http://y:1",
    });
    const log = new LogMembers("self", set, dir.urls, decodeConfChange);
    const remove = confEntry(10, [{ type: "remove-node", nodeId: "x", url: "" }]);
    const readd = confEntry(12, [{ type: "add-node", nodeId: "x", url: "http://x:1" }]);
    log.appended([remove, normal(11), readd]);
    // Entry 10 applied, as raft-node does it: the directory, then appliedThrough.
    dir.applyConfChange(10, decodeConfChange(remove.data), conf(["self", "y"]));
    log.appliedThrough(10);
    assert.equal(log.has("x"), true, "named by entry 12");
    assert.equal(peers.get("x"), "http://x:1", "answered through its peer");
  });
});
