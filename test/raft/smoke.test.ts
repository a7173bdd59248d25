import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Network, ids } from "./network.js";

describe("raft smoke", () => {
  it("a 3-node cluster elects a leader and replicates a proposal to every node", () => {
    const net = new Network(ids(3));
    net.campaign("1");
    assert.equal(net.leader(), "1");
    net.propose("1", "hello");
    for (const id of ids(3)) assert.deepEqual(net.appliedData(id), ["hello"]);
  });

  it("elections happen by ticking alone", () => {
    const net = new Network(ids(5));
    net.tick(40);
    const l = net.leader();
    assert.ok(l !== undefined, "no leader after 40 ticks");
    net.propose("3", "via-follower");
    for (const id of ids(5)) assert.deepEqual(net.appliedData(id), ["via-follower"]);
  });
});
