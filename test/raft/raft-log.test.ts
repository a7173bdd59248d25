import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { InvariantError } from "../../src/raft/invariant.js";
import { RaftLog } from "../../src/raft/raft-log.js";
import { MemoryStorage, StorageError } from "../../src/raft/storage.js";
import type { Entry, Snapshot } from "../../src/raft/types.js";
import { EMPTY_BYTES } from "../../src/raft/types.js";
import { confState, entriesWithTerms, entry, termsOf } from "./helpers.js";

const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/** A RaftLog whose stable log has entries with the given terms, committed up to `commit`. */
function logWith(terms: number[], commit = 0): RaftLog {
  const st = new MemoryStorage();
  st.append(entriesWithTerms(terms));
  const l = new RaftLog(st, NO_LIMIT);
  l.commitTo(commit);
  return l;
}

/** A RaftLog over a storage compacted so that `first` is the first available index. */
function compactedLog(terms: number[], first: number): RaftLog {
  const st = new MemoryStorage();
  st.append(entriesWithTerms(terms));
  st.compact(first - 1);
  return new RaftLog(st, NO_LIMIT);
}

function errCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof StorageError) return e.code;
    if (e instanceof InvariantError) return "invariant";
    throw e;
  }
  return "ok";
}

describe("raft-log: findConflict (Raft §5.3 log matching)", () => {
  const log = [1, 2, 3];
  const cases: { name: string; ents: Entry[]; want: number }[] = [
    { name: "no entries", ents: [], want: 0 },
    { name: "all present", ents: entriesWithTerms([1, 2, 3]), want: 0 },
    { name: "a suffix present", ents: entriesWithTerms([2, 3], 2), want: 0 },
    { name: "present then new", ents: entriesWithTerms([2, 3, 4, 4], 2), want: 4 },
    { name: "only new", ents: entriesWithTerms([4, 4], 4), want: 4 },
    { name: "conflict at the first", ents: entriesWithTerms([4, 4, 4]), want: 1 },
    { name: "conflict in the middle", ents: entriesWithTerms([1, 4, 4]), want: 2 },
    { name: "conflict at the last", ents: entriesWithTerms([2, 4], 2), want: 3 },
  ];
  for (const c of cases) it(c.name, () => assert.equal(logWith(log).findConflict(c.ents), c.want));
});

describe("raft-log: findConflictByTerm (fast backtracking)", () => {
  // Index:  1  2  3  4  5  6
  // Term:   1  2  2  5  5  5
  const terms = [1, 2, 2, 5, 5, 5];
  const cases: {
    name: string;
    index: number;
    term: number;
    want: { index: number; term: number };
  }[] = [
    { name: "the entry's term is <= term", index: 6, term: 6, want: { index: 6, term: 5 } },
    { name: "equal term matches at once", index: 5, term: 5, want: { index: 5, term: 5 } },
    { name: "skips a whole term", index: 6, term: 4, want: { index: 3, term: 2 } },
    { name: "skips two terms", index: 6, term: 1, want: { index: 1, term: 1 } },
    { name: "nothing old enough", index: 6, term: 0, want: { index: 0, term: 0 } },
    { name: "from the middle", index: 3, term: 1, want: { index: 1, term: 1 } },
    { name: "index 0", index: 0, term: 3, want: { index: 0, term: 0 } },
  ];
  for (const c of cases) {
    it(c.name, () => assert.deepEqual(logWith(terms).findConflictByTerm(c.index, c.term), c.want));
  }

  it("stops at the compacted boundary with term 0", () => {
    // first index 4: index 3 is the snapshot (term 2), index 2 is compacted.
    const l = compactedLog(terms, 4);
    assert.deepEqual(l.findConflictByTerm(6, 2), { index: 3, term: 2 });
    assert.deepEqual(l.findConflictByTerm(6, 1), { index: 2, term: 0 });
  });
});

describe("raft-log: maybeAppend (Raft §5.3: consistency check, conflict truncation)", () => {
  // Stable log 1@1 2@2 3@3, committed 1.
  const cases: {
    name: string;
    index: number;
    logTerm: number;
    commit: number;
    ents: Entry[];
    want: number | undefined;
    wantTerms: number[];
    wantCommit: number;
  }[] = [
    {
      name: "previous term mismatch: refused, unchanged",
      index: 3,
      logTerm: 2,
      commit: 3,
      ents: [entry(4, 4)],
      want: undefined,
      wantTerms: [1, 2, 3],
      wantCommit: 1,
    },
    {
      name: "previous index past the end: refused",
      index: 4,
      logTerm: 4,
      commit: 3,
      ents: [entry(5, 4)],
      want: undefined,
      wantTerms: [1, 2, 3],
      wantCommit: 1,
    },
    {
      name: "heartbeat-like empty append advances commit",
      index: 3,
      logTerm: 3,
      commit: 3,
      ents: [],
      want: 3,
      wantTerms: [1, 2, 3],
      wantCommit: 3,
    },
    {
      name: "new entries at the end",
      index: 3,
      logTerm: 3,
      commit: 4,
      ents: [entry(4, 4), entry(5, 4)],
      want: 5,
      wantTerms: [1, 2, 3, 4, 4],
      wantCommit: 4,
    },
    {
      name: "entries already present: nothing changes",
      index: 1,
      logTerm: 1,
      commit: 2,
      ents: [entry(2, 2), entry(3, 3)],
      want: 3,
      wantTerms: [1, 2, 3],
      wantCommit: 2,
    },
    {
      name: "conflict at the last entry truncates it",
      index: 2,
      logTerm: 2,
      commit: 1,
      ents: [entry(3, 4)],
      want: 3,
      wantTerms: [1, 2, 4],
      wantCommit: 1,
    },
    {
      name: "conflict in the middle truncates the suffix",
      index: 1,
      logTerm: 1,
      commit: 1,
      ents: [entry(2, 4)],
      want: 2,
      wantTerms: [1, 4],
      wantCommit: 1,
    },
    {
      name: "commit is bounded by the last new entry, not the leader's commit",
      index: 1,
      logTerm: 1,
      commit: 10,
      ents: [entry(2, 2)],
      want: 2,
      wantTerms: [1, 2, 3],
      wantCommit: 2,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const l = logWith([1, 2, 3], 1);
      assert.equal(l.maybeAppend(c.index, c.logTerm, c.commit, c.ents), c.want);
      assert.deepEqual(termsOf(l.allEntries()), c.wantTerms);
      assert.equal(l.committed, c.wantCommit);
    });
  }

  it("refuses (as a bug) to truncate a committed entry", () => {
    const l = logWith([1, 2, 3], 2);
    assert.throws(() => l.maybeAppend(1, 1, 3, [entry(2, 4)]), InvariantError);
  });
});

describe("raft-log: term, slice and bounds over stable, unstable and compacted parts", () => {
  // Stable: 1..5 terms 1 1 2 2 3, compacted up to 2 (first index 3); unstable: 6@4, 7@4.
  function mixed(): RaftLog {
    const l = compactedLog([1, 1, 2, 2, 3], 3);
    l.append([entry(6, 4, "six"), entry(7, 4, "seven")]);
    return l;
  }

  const terms: { name: string; i: number; want: number | string }[] = [
    { name: "a compacted index", i: 1, want: "compacted" },
    { name: "the snapshot index (first - 1) has the snapshot's term", i: 2, want: 1 },
    { name: "first stable index", i: 3, want: 2 },
    { name: "last stable index", i: 5, want: 3 },
    { name: "unstable index", i: 7, want: 4 },
    { name: "past the end", i: 8, want: "unavailable" },
  ];
  for (const c of terms) {
    it(`term: ${c.name}`, () => {
      const l = mixed();
      let got: number | string;
      try {
        got = l.term(c.i);
      } catch (e) {
        got = e instanceof StorageError ? e.code : "other";
      }
      assert.equal(got, c.want);
      assert.equal(l.termOrUndefined(c.i), typeof c.want === "number" ? c.want : undefined);
    });
  }

  const slices: { name: string; lo: number; hi: number; max?: number; want: number[] | string }[] =
    [
      { name: "empty range", lo: 4, hi: 4, want: [] },
      { name: "stable only", lo: 3, hi: 5, want: [3, 4] },
      { name: "across stable and unstable", lo: 4, hi: 8, want: [4, 5, 6, 7] },
      { name: "unstable only", lo: 6, hi: 8, want: [6, 7] },
      { name: "lo compacted", lo: 2, hi: 4, want: "compacted" },
      { name: "hi past the end", lo: 4, hi: 9, want: "invariant" },
      { name: "lo > hi", lo: 5, hi: 4, want: "invariant" },
      { name: "size limit keeps at least one entry", lo: 6, hi: 8, max: 1, want: [6] },
      { name: "size limit across the boundary", lo: 5, hi: 8, max: 3, want: [5, 6] },
    ];
  for (const c of slices) {
    it(`slice: ${c.name}`, () => {
      const l = mixed();
      let got: number[] | string;
      const code = errCode(() => {
        got = l.slice(c.lo, c.hi, c.max ?? NO_LIMIT).map((e) => e.index);
      });
      assert.deepEqual(code === "ok" ? got! : code, c.want);
    });
  }

  it("first and last index span both parts", () => {
    const l = mixed();
    assert.equal(l.firstIndex(), 3);
    assert.equal(l.lastIndex(), 7);
    assert.equal(l.stableLastIndex(), 5);
    assert.equal(l.lastTerm(), 4);
  });
});

describe("raft-log: commit, apply and up-to-date checks", () => {
  it("isUpToDate: a later last term wins, then the longer log (Raft §5.4.1)", () => {
    const l = logWith([1, 2, 2]);
    const cases: [number, number, boolean][] = [
      [1, 3, true], // later term, shorter log
      [3, 2, true], // same term, same length
      [4, 2, true], // same term, longer
      [2, 2, false], // same term, shorter
      [9, 1, false], // earlier term, longer
    ];
    for (const [lasti, term, want] of cases) {
      assert.equal(l.isUpToDate(lasti, term), want, `(${lasti}, ${term})`);
    }
  });

  it("maybeCommit commits only an entry of the given (current) term (Raft §5.4.2)", () => {
    const l = logWith([1, 1, 2]);
    assert.equal(l.maybeCommit(2, 2), false, "entry 2 is of term 1");
    assert.equal(l.committed, 0);
    assert.equal(l.maybeCommit(3, 2), true);
    assert.equal(l.committed, 3);
    assert.equal(l.maybeCommit(2, 1), false, "never moves back");
    assert.equal(l.committed, 3);
  });

  it("commitTo past the last index is a bug", () => {
    assert.throws(() => logWith([1]).commitTo(2), InvariantError);
  });

  it("appliedTo outside [applied, committed] is a bug", () => {
    const l = logWith([1, 1, 1], 2);
    l.appliedTo(1);
    assert.throws(() => l.appliedTo(3), InvariantError);
  });

  it("nextCommittedEnts hands out committed entries once, bounded in size", () => {
    const st = new MemoryStorage();
    st.append([entry(1, 1, "aaaa"), entry(2, 1, "bbbb"), entry(3, 1, "cccc")]);
    const l = new RaftLog(st, 6);
    assert.equal(l.hasNextCommittedEnts(), false);
    l.commitTo(3);
    assert.deepEqual(
      l.nextCommittedEnts().map((e) => e.index),
      [1],
      "4 + 4 bytes exceed the limit of 6",
    );
    l.appliedTo(1);
    assert.deepEqual(
      l.nextCommittedEnts().map((e) => e.index),
      [2],
    );
    l.appliedTo(3);
    assert.equal(l.hasNextCommittedEnts(), false);
    assert.deepEqual(l.nextCommittedEnts(), []);
  });

  it("restore replaces the log with a snapshot and commits its index", () => {
    const l = logWith([1, 1, 2], 1);
    const snap: Snapshot = {
      metadata: { index: 10, term: 5, confState: confState(["1"]) },
      data: EMPTY_BYTES,
    };
    l.restore(snap);
    assert.equal(l.committed, 10);
    assert.equal(l.firstIndex(), 11);
    assert.equal(l.lastIndex(), 10);
    assert.equal(l.term(10), 5);
    assert.equal(l.hasPendingSnapshot(), true);
    assert.equal(l.hasNextCommittedEnts(), false, "nothing to apply before the snapshot");
  });
});
