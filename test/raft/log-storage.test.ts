import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Unstable } from "../../src/raft/log-unstable.js";
import { MemoryStorage, StorageError, limitSize } from "../../src/raft/storage.js";
import type { Snapshot } from "../../src/raft/types.js";
import { EMPTY_BYTES } from "../../src/raft/types.js";
import { confState, enc, entriesWithTerms, entry, termsOf } from "./helpers.js";

function snap(index: number, term: number, voters: string[] = ["1"]): Snapshot {
  return { metadata: { index, term, confState: confState(voters) }, data: EMPTY_BYTES };
}

function unstable(offset: number, terms: number[], s?: Snapshot): Unstable {
  const u = new Unstable(offset);
  u.entries = entriesWithTerms(terms, offset);
  if (s !== undefined) u.snapshot = s;
  return u;
}

function code(fn: () => unknown): string {
  try {
    fn();
    return "ok";
  } catch (e) {
    return e instanceof StorageError ? e.code : (e as Error).message;
  }
}

describe("log-unstable: the not-yet-persisted part of the log", () => {
  it("first index is known only with a snapshot", () => {
    assert.equal(unstable(5, [1]).maybeFirstIndex(), undefined);
    assert.equal(unstable(5, [1], snap(4, 1)).maybeFirstIndex(), 5);
  });

  const lasts: { name: string; u: () => Unstable; want: number | undefined }[] = [
    { name: "entries", u: () => unstable(5, [1, 1]), want: 6 },
    { name: "snapshot only", u: () => unstable(5, [], snap(4, 1)), want: 4 },
    { name: "nothing", u: () => unstable(5, []), want: undefined },
  ];
  for (const c of lasts)
    it(`last index: ${c.name}`, () => assert.equal(c.u().maybeLastIndex(), c.want));

  const terms: { name: string; u: () => Unstable; i: number; want: number | undefined }[] = [
    { name: "an unstable entry", u: () => unstable(5, [1, 2]), i: 6, want: 2 },
    { name: "past the end", u: () => unstable(5, [1, 2]), i: 7, want: undefined },
    { name: "before the offset, no snapshot", u: () => unstable(5, [1, 2]), i: 4, want: undefined },
    { name: "the snapshot index", u: () => unstable(5, [2], snap(4, 1)), i: 4, want: 1 },
    { name: "before the snapshot", u: () => unstable(5, [2], snap(4, 1)), i: 3, want: undefined },
  ];
  for (const c of terms) it(`term: ${c.name}`, () => assert.equal(c.u().maybeTerm(c.i), c.want));

  const stables: {
    name: string;
    i: number;
    t: number;
    wantOffset: number;
    wantLen: number;
  }[] = [
    { name: "a prefix becomes stable", i: 5, t: 1, wantOffset: 6, wantLen: 2 },
    { name: "everything becomes stable", i: 7, t: 2, wantOffset: 8, wantLen: 0 },
    {
      name: "term mismatch (entry replaced meanwhile) is ignored",
      i: 6,
      t: 9,
      wantOffset: 5,
      wantLen: 3,
    },
    { name: "an index before the offset is ignored", i: 4, t: 1, wantOffset: 5, wantLen: 3 },
    { name: "an index past the end is ignored", i: 9, t: 2, wantOffset: 5, wantLen: 3 },
  ];
  for (const c of stables) {
    it(`stableTo: ${c.name}`, () => {
      const u = unstable(5, [1, 2, 2]);
      u.stableTo(c.i, c.t);
      assert.equal(u.offset, c.wantOffset);
      assert.equal(u.entries.length, c.wantLen);
    });
  }

  const appends: {
    name: string;
    first: number;
    terms: number[];
    wantOffset: number;
    wantTerms: number[];
  }[] = [
    {
      name: "directly after the last",
      first: 8,
      terms: [3],
      wantOffset: 5,
      wantTerms: [1, 2, 2, 3],
    },
    {
      name: "replacing everything at the offset",
      first: 5,
      terms: [3, 3],
      wantOffset: 5,
      wantTerms: [3, 3],
    },
    {
      name: "before the offset (stable part is truncated too)",
      first: 3,
      terms: [3],
      wantOffset: 3,
      wantTerms: [3],
    },
    {
      name: "truncating in the middle",
      first: 6,
      terms: [3, 3, 3],
      wantOffset: 5,
      wantTerms: [1, 3, 3, 3],
    },
  ];
  for (const c of appends) {
    it(`truncateAndAppend: ${c.name}`, () => {
      const u = unstable(5, [1, 2, 2]);
      u.truncateAndAppend(entriesWithTerms(c.terms, c.first));
      assert.equal(u.offset, c.wantOffset);
      assert.deepEqual(termsOf(u.entries), c.wantTerms);
      u.entries.forEach((e, i) => assert.equal(e.index, u.offset + i, "indexes are contiguous"));
    });
  }

  it("slice checks its bounds", () => {
    const u = unstable(5, [1, 2, 2]);
    assert.deepEqual(
      u.slice(6, 8).map((e) => e.index),
      [6, 7],
    );
    assert.throws(() => u.slice(4, 6), /out of bound/);
    assert.throws(() => u.slice(6, 9), /out of bound/);
    assert.throws(() => u.slice(7, 6), /out of bound/);
  });

  it("restore and stableSnapTo", () => {
    const u = unstable(5, [1, 2]);
    u.restore(snap(20, 4));
    assert.equal(u.offset, 21);
    assert.equal(u.entries.length, 0);
    assert.equal(u.maybeLastIndex(), 20);
    u.stableSnapTo(19);
    assert.ok(u.snapshot !== undefined, "another index does not clear it");
    u.stableSnapTo(20);
    assert.equal(u.snapshot, undefined);
  });
});

describe("MemoryStorage: the in-memory stable log", () => {
  /** Entries 3..5 with terms 3 4 5 after a compaction at 2 (term 2). */
  function storage(): MemoryStorage {
    const st = new MemoryStorage();
    st.append(entriesWithTerms([1, 2, 3, 4, 5]));
    st.compact(2);
    return st;
  }

  it("an empty storage has first 1, last 0, term(0) 0", () => {
    const st = new MemoryStorage();
    assert.equal(st.firstIndex(), 1);
    assert.equal(st.lastIndex(), 0);
    assert.equal(st.term(0), 0);
    assert.equal(
      code(() => st.entries(1, 2, 100)),
      "unavailable",
    );
  });

  const terms: { i: number; want: number | string }[] = [
    { i: 1, want: "compacted" },
    { i: 2, want: 2 },
    { i: 3, want: 3 },
    { i: 5, want: 5 },
    { i: 6, want: "unavailable" },
  ];
  for (const c of terms) {
    it(`term(${c.i}) after compaction at 2 is ${c.want}`, () => {
      const st = storage();
      let got: number | string = "";
      const r = code(() => {
        got = st.term(c.i);
      });
      assert.equal(r === "ok" ? got : r, c.want);
    });
  }

  const ents: { name: string; lo: number; hi: number; max: number; want: number[] | string }[] = [
    { name: "compacted lo", lo: 2, hi: 4, max: 100, want: "compacted" },
    { name: "all available", lo: 3, hi: 6, max: 100, want: [3, 4, 5] },
    { name: "a middle range", lo: 4, hi: 5, max: 100, want: [4] },
    { name: "hi past the end", lo: 4, hi: 7, max: 100, want: "unavailable" },
    { name: "empty entries never exceed a zero limit", lo: 3, hi: 6, max: 0, want: [3, 4, 5] },
  ];
  for (const c of ents) {
    it(`entries: ${c.name}`, () => {
      const st = storage();
      let got: number[] = [];
      const r = code(() => {
        got = st.entries(c.lo, c.hi, c.max).map((e) => e.index);
      });
      assert.deepEqual(r === "ok" ? got : r, c.want);
    });
  }

  it("entries respects the byte limit", () => {
    const st = new MemoryStorage();
    st.append([entry(1, 1, "aa"), entry(2, 1, "bb"), entry(3, 1, "cc")]);
    assert.deepEqual(
      st.entries(1, 4, 4).map((e) => e.index),
      [1, 2],
    );
    assert.deepEqual(
      st.entries(1, 4, 5).map((e) => e.index),
      [1, 2],
    );
    assert.deepEqual(
      st.entries(1, 4, 6).map((e) => e.index),
      [1, 2, 3],
    );
  });

  const compacts: { name: string; at: number; want: string; first?: number }[] = [
    { name: "at or before the current snapshot", at: 2, want: "compacted" },
    { name: "past the last index", at: 6, want: "compact 6 is out of bound lastindex(5)" },
    { name: "in the middle", at: 4, want: "ok", first: 5 },
    { name: "at the last index", at: 5, want: "ok", first: 6 },
  ];
  for (const c of compacts) {
    it(`compact: ${c.name}`, () => {
      const st = storage();
      assert.equal(
        code(() => st.compact(c.at)),
        c.want,
      );
      if (c.first !== undefined) {
        assert.equal(st.firstIndex(), c.first);
        assert.equal(st.lastIndex(), 5);
        assert.equal(st.term(c.at), c.at, "the compaction point keeps its term");
      }
    });
  }

  it("createSnapshot takes the entry's term and defaults to the current configuration", () => {
    const st = MemoryStorage.withConfState(confState(["1", "2"]));
    st.append(entriesWithTerms([1, 1, 2]));
    const s = st.createSnapshot(3, undefined, enc("state"));
    assert.deepEqual(
      [s.metadata.index, s.metadata.term, s.metadata.confState.voters],
      [3, 2, ["1", "2"]],
    );
    assert.equal(st.snapshot(), s);
    assert.equal(
      code(() => st.createSnapshot(3, undefined, EMPTY_BYTES)),
      "snapshot-out-of-date",
    );
    assert.match(
      code(() => st.createSnapshot(9, undefined, EMPTY_BYTES)),
      /out of bound/,
    );
  });

  it("applySnapshot replaces the log; an older snapshot is refused", () => {
    const st = storage();
    st.applySnapshot(snap(10, 7));
    assert.equal(st.firstIndex(), 11);
    assert.equal(st.lastIndex(), 10);
    assert.equal(st.term(10), 7);
    assert.equal(
      code(() => st.applySnapshot(snap(9, 7))),
      "snapshot-out-of-date",
    );
  });

  const appendCases: {
    name: string;
    first: number;
    terms: number[];
    want: number[] | string;
  }[] = [
    { name: "after the last", first: 6, terms: [6], want: [3, 4, 5, 6] },
    { name: "overwrites a conflicting suffix", first: 4, terms: [9, 9, 9], want: [3, 9, 9, 9] },
    { name: "overlapping the compacted part", first: 1, terms: [1, 2, 8, 8], want: [8, 8] },
    { name: "entirely compacted is ignored", first: 1, terms: [1, 2], want: [3, 4, 5] },
    {
      name: "a gap is refused",
      first: 7,
      terms: [7],
      want: "missing log entry [last: 5, append at: 7]",
    },
  ];
  for (const c of appendCases) {
    it(`append: ${c.name}`, () => {
      const st = storage();
      const r = code(() => st.append(entriesWithTerms(c.terms, c.first)));
      const got = r === "ok" ? termsOf(st.entries(st.firstIndex(), st.lastIndex() + 1, 1e9)) : r;
      assert.deepEqual(got, c.want);
    });
  }

  it("initialState returns what was set", () => {
    const st = MemoryStorage.withConfState(confState(["1"], ["2"]));
    st.setHardState({ term: 3, vote: "1", commit: 2 });
    assert.deepEqual(st.initialState(), {
      hardState: { term: 3, vote: "1", commit: 2 },
      confState: confState(["1"], ["2"]),
    });
  });

  it("limitSize keeps at least one entry and stops before the limit is exceeded", () => {
    const es = [entry(1, 1, "aaa"), entry(2, 1, "bbb"), entry(3, 1, "ccc")];
    assert.equal(limitSize(es, 0).length, 1);
    assert.equal(limitSize(es, 6).length, 2);
    assert.equal(limitSize(es, 9).length, 3);
    assert.equal(limitSize([], 9).length, 0);
  });
});
