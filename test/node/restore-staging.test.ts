/**
 * Restore into a running cluster, the replica's rules (src/node/restore-staging.ts and the
 * applier): chunks staged durably and decided once per index, a commit applied alone at its own
 * index or refused identically (wrong store kind, damaged, newer format, interrupted by a leader
 * change, a lost chunk, a newer restore or an abort), replays after a crash deciding nothing twice,
 * and no snapshot inside a staged restore.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackupWriter } from "../../src/backup/backup-file.js";
import { Applier } from "../../src/node/applier.js";
import { encodeEntryPayload } from "../../src/node/entry-payload.js";
import type { EntryPayload, PayloadKind } from "../../src/node/entry-payload.js";
import { SILENT } from "../../src/node/options.js";
import { RESTORE_ARGS, RestoreStaging } from "../../src/node/restore-staging.js";
import type { RestoreOutcome, StagedEntry } from "../../src/node/restore-staging.js";
import { MemoryStore } from "../../src/store/memory/memory-store.js";
import type { Entry } from "../../src/raft/types.js";
import { isNexusError } from "../../src/errors/index.js";

const enc = new TextEncoder();

function dir(): string {
  return mkdtempSync(join(tmpdir(), "nexus-staging-"));
}

/** A memory store with some keys, backed up into a backup file; returns the file's bytes. */
async function backupBytes(
  keys: Record<string, string>,
  opts: { kind?: string; version?: number | undefined } = {},
): Promise<Buffer> {
  const s = new MemoryStore();
  await s.open();
  let i = 0;
  await s.apply(
    Object.entries(keys).map(([k, v]) => ({
      index: ++i,
      term: 1,
      command: { data: enc.encode(`set ${k} ${v}`), args: {} },
      timestampMs: 0,
      seed: 0,
    })),
  );
  const b = await s.backup();
  const file = join(dir(), "b.nexus-backup");
  const w = await BackupWriter.create(file, {
    storeKind: opts.kind ?? "memory",
    clusterName: "src",
    index: b.position.index,
    term: b.position.term,
    members: [],
    nexusVersion: "test",
    createdAt: new Date(0).toISOString(),
    source: "test",
  });
  for await (const c of b.stream) await w.write(c);
  await w.finish();
  const bytes = readFileSync(file);
  if (opts.version !== undefined) bytes.writeUInt32LE(opts.version, 8);
  return bytes;
}

function payload(kind: PayloadKind, data: Uint8Array, args: Record<string, string>): EntryPayload {
  return { kind, requestId: new Uint8Array(randomBytes(16)), timestampMs: 1, seed: 1, data, args };
}

/** The restore entries for `bytes`: chunks of `chunk` bytes, then the commit. */
function restoreEntries(
  bytes: Buffer,
  id: string,
  chunk: number,
): { chunks: EntryPayload[]; commit: EntryPayload } {
  const chunks: EntryPayload[] = [];
  for (let at = 0; at < bytes.length; at += chunk) {
    chunks.push(
      payload("restore-chunk", bytes.subarray(at, at + chunk), {
        [RESTORE_ARGS.id]: id,
        [RESTORE_ARGS.offset]: String(at),
      }),
    );
  }
  const commit = payload("restore-commit", new Uint8Array(0), {
    [RESTORE_ARGS.id]: id,
    [RESTORE_ARGS.bytes]: String(bytes.length),
    [RESTORE_ARGS.sha256]: createHash("sha256").update(bytes).digest("hex"),
  });
  return { chunks, commit };
}

function at(index: number, term: number, p: EntryPayload | undefined): StagedEntry {
  return { index, term, payload: p };
}

const ID1 = "11".repeat(16);
const ID2 = "22".repeat(16);

async function drain(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe("RestoreStaging: the staging and commit rules", () => {
  it("stages chunks and accepts a commit with the same length and SHA-256", async () => {
    const d = dir();
    const s = await RestoreStaging.open(d, { index: 0, term: 0 }, SILENT);
    const bytes = await backupBytes({ a: "1" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 50);
    assert.ok(chunks.length > 2);
    await s.stage(chunks.map((c, i) => at(10 + i, 2, c)));
    assert.equal(s.current()?.size, bytes.length);
    assert.equal(s.openAt(10), true);
    assert.equal(s.openAt(9), false);
    const ci = 10 + chunks.length;
    const dec = await s.commit(at(ci, 2, commit), "memory");
    assert.equal(dec.ok, true);
    if (dec.ok) assert.ok((await drain(dec.data)).length > 0);
    if (dec.ok) assert.deepEqual(dec.from, { index: 1, term: 1 }, "the backup's own position");
    await s.committed(ci);
    assert.equal(s.current(), undefined);
    assert.equal(s.openAt(ci), false, "the store holds the restored state at the commit");
    assert.equal(s.openAt(ci - 1), true);
    assert.deepEqual(readdirSync(d), ["state.json"], "the staged file is gone");
  });

  for (const c of [
    { name: "another store kind", kind: "sqlite", version: undefined, want: "wrong-store-kind" },
    { name: "a newer format version", kind: "memory", version: 9, want: "newer-version" },
  ] as const) {
    it(`refuses a commit of ${c.name}, and drops the staging`, async () => {
      const s = await RestoreStaging.open(dir(), { index: 0, term: 0 }, SILENT);
      const bytes = await backupBytes({ a: "1" }, { kind: c.kind, version: c.version });
      const { chunks, commit } = restoreEntries(bytes, ID1, 64);
      await s.stage(chunks.map((p, i) => at(1 + i, 1, p)));
      const dec = await s.commit(at(1 + chunks.length, 1, commit), "memory");
      assert.equal(dec.ok, false);
      if (!dec.ok) assert.equal(dec.outcome.reason, c.want);
      assert.equal(s.current(), undefined);
    });
  }

  it("refuses a damaged backup (a frame's checksum), identically whatever the replica", async () => {
    const bytes = await backupBytes({ a: "1", b: "2" });
    bytes[bytes.length - 70] = bytes[bytes.length - 70]! ^ 1;
    const outcomes: string[] = [];
    for (let r = 0; r < 2; r++) {
      const s = await RestoreStaging.open(dir(), { index: 0, term: 0 }, SILENT);
      const { chunks, commit } = restoreEntries(bytes, ID1, 64);
      await s.stage(chunks.map((p, i) => at(1 + i, 1, p)));
      const dec = await s.commit(at(1 + chunks.length, 1, commit), "memory");
      outcomes.push(JSON.stringify(dec.ok ? "ok" : dec.outcome));
    }
    assert.match(outcomes[0]!, /"reason":"damaged"/);
    assert.equal(outcomes[1], outcomes[0]);
  });

  for (const c of [
    {
      name: "an entry of a higher term (a leader change) drops the staging",
      between: (): StagedEntry[] => [at(3, 2, undefined)],
    },
    {
      name: "a lost chunk (a gap) drops the staging",
      between: (): StagedEntry[] => [],
      skip: 1,
    },
    {
      name: "a newer restore drops the older",
      between: (): StagedEntry[] => [
        at(3, 1, payload("restore-chunk", enc.encode("x"), { [RESTORE_ARGS.id]: ID2 })),
      ],
    },
    {
      name: "an abort drops the staging",
      between: (): StagedEntry[] => [
        at(3, 1, payload("restore-abort", new Uint8Array(0), { [RESTORE_ARGS.id]: ID1 })),
      ],
    },
  ]) {
    it(`refuses the commit (not staged): ${c.name}`, async () => {
      const s = await RestoreStaging.open(dir(), { index: 0, term: 0 }, SILENT);
      const bytes = await backupBytes({ a: "1" });
      const { chunks, commit } = restoreEntries(bytes, ID1, Math.ceil(bytes.length / 3));
      await s.stage([at(1, 1, chunks[0])]);
      await s.stage(c.between());
      const rest = chunks.slice(1 + (c.skip ?? 0));
      await s.stage(rest.map((p, i) => at(10 + i, 1, p)));
      const dec = await s.commit(at(20, 1, commit), "memory");
      assert.equal(dec.ok, false, "refused");
      if (!dec.ok) assert.equal(dec.outcome.reason, "not-staged");
      // Deciding it again (a retry after the store failed) says the same.
      const again = await s.commit(at(20, 1, commit), "memory");
      assert.deepEqual(again, dec);
    });
  }

  it("a replay after a crash decides nothing twice: the same entries again leave the same state", async () => {
    const d = dir();
    const bytes = await backupBytes({ a: "1", b: "2" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 40);
    const entries = chunks.map((p, i) => at(5 + i, 3, p));
    const s1 = await RestoreStaging.open(d, { index: 4, term: 3 }, SILENT);
    await s1.stage(entries);
    // A crash before the store's index moved past the chunks: the store says 4.
    const s2 = await RestoreStaging.open(d, { index: 4, term: 3 }, SILENT);
    assert.equal(s2.openAt(5), true, "conservative below what was staged before the crash");
    await s2.stage(entries);
    assert.equal(s2.current()?.size, bytes.length);
    const dec = await s2.commit(at(5 + chunks.length, 3, commit), "memory");
    assert.equal(dec.ok, true);
    if (dec.ok) await drain(dec.data);
  });

  it("a crash during the commit: settled at open by the store's applied index", async () => {
    const bytes = await backupBytes({ a: "1" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 100);
    const ci = 1 + chunks.length;
    for (const c of [
      { name: "the store was replaced", storeAt: ci, open: false },
      { name: "the store was not replaced", storeAt: ci - 1, open: true },
    ]) {
      const d = dir();
      const s = await RestoreStaging.open(d, { index: 0, term: 0 }, SILENT);
      await s.stage(chunks.map((p, i) => at(1 + i, 1, p)));
      const dec = await s.commit(at(ci, 1, commit), "memory");
      assert.equal(dec.ok, true);
      if (dec.ok) await drain(dec.data);
      // No committed(): the process died.
      const re = await RestoreStaging.open(d, { index: c.storeAt, term: 1 }, SILENT);
      assert.equal(re.current() !== undefined, c.open, c.name);
      if (c.open) {
        const again = await re.commit(at(ci, 1, commit), "memory");
        assert.equal(again.ok, true, "decided again: accepted");
        if (again.ok) await drain(again.data);
      } else {
        assert.deepEqual(readdirSync(d), ["state.json"]);
      }
    }
  });

  it("a staged file this disk damaged is a failure of this replica (CORRUPTED), not a refusal", async () => {
    const d = dir();
    const s = await RestoreStaging.open(d, { index: 0, term: 0 }, SILENT);
    const bytes = await backupBytes({ a: "1" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 100);
    await s.stage(chunks.map((p, i) => at(1 + i, 1, p)));
    const part = join(d, `${ID1}.part`);
    const b = readFileSync(part);
    b[20] = b[20]! ^ 0xff;
    writeFileSync(part, b);
    await assert.rejects(
      s.commit(at(1 + chunks.length, 1, commit), "memory"),
      (e: unknown) => isNexusError(e) && e.code === "CORRUPTED",
    );
  });

  it("a snapshot restored into the store drops the staging", async () => {
    const d = dir();
    const s = await RestoreStaging.open(d, { index: 0, term: 0 }, SILENT);
    const bytes = await backupBytes({ a: "1" });
    const { chunks } = restoreEntries(bytes, ID1, 100);
    await s.stage([at(1, 1, chunks[0])]);
    await s.reset(50);
    assert.equal(s.current(), undefined);
    assert.equal(s.openAt(1), false);
    assert.deepEqual(readdirSync(d), ["state.json"]);
  });
});

describe("Applier with restore entries", () => {
  function entry(index: number, term: number, p: EntryPayload): Entry {
    return { index, term, type: "normal", data: encodeEntryPayload(p) };
  }

  /**
   * An Applier with a restore staging over `store`, opened here; `results` holds each entry's
   * answer (its text, or its error) by index, and `applyAll` applies entries and stops it.
   */
  async function restoringApplier(store: MemoryStore) {
    const pos = await store.open();
    const staging = await RestoreStaging.open(dir(), pos, SILENT);
    const results = new Map<number, string>();
    const a = new Applier(
      store,
      {
        onResult: (_p, index, r) =>
          results.set(index, r.ok ? new TextDecoder().decode(r.data) : r.error),
        onApplied: () => undefined,
        onStoreHealth: () => undefined,
      },
      SILENT,
      pos,
      100,
      30_000,
      staging,
    );
    const applyAll = async (es: Entry[]): Promise<void> => {
      a.start();
      a.enqueue({ entries: es });
      await a.drain();
      await a.stop();
    };
    return { results, applyAll };
  }

  it("replaces the store at the commit's index: earlier saves are replaced, later ones apply on the restored state", async () => {
    const store = new MemoryStore();
    const { results, applyAll } = await restoringApplier(store);
    const bytes = await backupBytes({ a: "from-backup" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 64);
    const cmd = (s: string): EntryPayload => payload("command", enc.encode(s), {});
    let i = 0;
    const es: Entry[] = [entry(++i, 1, cmd("set a before")), entry(++i, 1, cmd("set z before"))];
    for (const c of chunks) {
      es.push(entry(++i, 1, c));
      // A save between chunks: applied now, replaced by the restore.
      es.push(entry(++i, 1, cmd(`set y${i} during`)));
    }
    const ci = ++i;
    es.push(entry(ci, 1, commit));
    es.push(entry(++i, 1, cmd("set b after")));
    await applyAll(es);
    const outcome = JSON.parse(results.get(ci)!) as RestoreOutcome;
    assert.deepEqual(outcome, { restored: true, index: ci, bytes: bytes.length });
    assert.deepEqual(
      JSON.parse(
        new TextDecoder().decode(await store.load({ data: enc.encode("dump"), args: {} })),
      ),
      { a: "from-backup", b: "after" },
    );
    assert.deepEqual(await store.lastApplied(), { index: i, term: 1 });
  });

  it("a refused commit changes nothing in the store and moves the index", async () => {
    const store = new MemoryStore();
    const { results, applyAll } = await restoringApplier(store);
    const bytes = await backupBytes({ a: "x" }, { kind: "redis" });
    const { chunks, commit } = restoreEntries(bytes, ID1, 4096);
    const es: Entry[] = [entry(1, 1, payload("command", enc.encode("set a kept"), {}))];
    chunks.forEach((c, k) => es.push(entry(2 + k, 1, c)));
    const ci = 2 + chunks.length;
    es.push(entry(ci, 1, commit));
    await applyAll(es);
    const o = JSON.parse(results.get(ci)!) as RestoreOutcome;
    assert.equal(o.restored, false);
    if (!o.restored) assert.equal(o.reason, "wrong-store-kind");
    assert.equal(
      new TextDecoder().decode(await store.load({ data: enc.encode("get a"), args: {} })),
      "kept",
    );
    assert.equal((await store.lastApplied()).index, ci);
  });
});
