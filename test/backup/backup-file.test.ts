import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import {
  BACKUP_FORMAT_VERSION,
  BackupFileError,
  BackupWriter,
  MAX_FRAME_BYTES,
  openBackupFile,
  verifyBackupFile,
} from "../../src/backup/backup-file.js";
import type { BackupHeader, BackupFileProblem } from "../../src/backup/backup-file.js";

const dir = mkdtempSync(join(tmpdir(), "nexus-backup-file-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const HEADER: BackupHeader = {
  storeKind: "sqlite",
  clusterName: "nexus",
  index: 42,
  term: 3,
  members: [{ id: "0123456789abcdef", url: "http://127.0.0.1:9021", role: "voter" }],
  nexusVersion: "0.1.0",
  createdAt: "2026-01-01T00:00:00.000Z",
  source: "127.0.0.1:9121",
};

let n = 0;
async function writeBackup(chunks: Uint8Array[]): Promise<string> {
  const path = join(dir, `b${n++}.nexus-backup`);
  const w = await BackupWriter.create(path, HEADER);
  for (const c of chunks) await w.write(c);
  await w.finish();
  return path;
}

function pseudoRandom(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

async function refusal(path: string): Promise<BackupFileError> {
  try {
    await verifyBackupFile(path);
  } catch (err) {
    assert.ok(err instanceof BackupFileError, `not a BackupFileError: ${String(err)}`);
    return err;
  }
  assert.fail(`${path} was accepted`);
}

describe("backup file format", () => {
  it("round-trips the header and the data, frames split at MAX_FRAME_BYTES, no tmp left", async () => {
    const data = [pseudoRandom(10, 1), pseudoRandom(MAX_FRAME_BYTES + 17, 2), new Uint8Array(0)];
    const path = await writeBackup(data);
    assert.ok(!existsSync(`${path}.tmp`));
    const b = await openBackupFile(path);
    assert.deepEqual(b.header, HEADER);
    assert.equal(b.formatVersion, BACKUP_FORMAT_VERSION);
    const got: Buffer[] = [];
    for await (const c of b.data) got.push(Buffer.from(c));
    assert.ok(Buffer.concat(got).equals(Buffer.concat(data)));
    const v = await verifyBackupFile(path);
    assert.equal(v.dataBytes, 10 + MAX_FRAME_BYTES + 17);
  });

  it("an aborted backup leaves no file under either name", async () => {
    const path = join(dir, "aborted.nexus-backup");
    const w = await BackupWriter.create(path, HEADER);
    await w.write(pseudoRandom(1000, 3));
    assert.ok(existsSync(`${path}.tmp`));
    await w.abort();
    assert.ok(!existsSync(path) && !existsSync(`${path}.tmp`));
  });

  it("every truncation is refused as truncated (or not a backup when nothing of it is left)", async () => {
    const path = await writeBackup([pseudoRandom(3000, 4), pseudoRandom(500, 5)]);
    const whole = readFileSync(path);
    const cut = join(dir, "cut.nexus-backup");
    const lengths = new Set<number>([0, 1, 7, 8, 15, 16, 20]);
    for (let len = 0; len < whole.length; len += 97) lengths.add(len);
    for (let k = 1; k <= 60; k++) lengths.add(whole.length - k);
    for (const len of lengths) {
      writeFileSync(cut, whole.subarray(0, len));
      const e = await refusal(cut);
      const want: BackupFileProblem = len === 0 ? "not-a-backup" : "truncated";
      assert.equal(e.reason, want, `cut at ${len}: ${e.message}`);
      assert.equal(e.code, "CORRUPTED");
    }
  });

  it("every flipped byte is refused (damaged, or the magic/version it hit)", async () => {
    const path = await writeBackup([pseudoRandom(700, 6), pseudoRandom(300, 7)]);
    const whole = readFileSync(path);
    const bad = join(dir, "flipped.nexus-backup");
    for (let i = 0; i < whole.length; i++) {
      const copy = Buffer.from(whole);
      copy[i] = copy[i]! ^ (1 << (i % 8));
      writeFileSync(bad, copy);
      const e = await refusal(bad);
      assert.ok(
        ["damaged", "not-a-backup", "newer-version", "truncated"].includes(e.reason),
        `byte ${i}: ${e.reason}`,
      );
    }
  });

  it("a wrong magic is not a backup; bytes after the end are refused", async () => {
    const path = await writeBackup([pseudoRandom(100, 8)]);
    const whole = readFileSync(path);
    const other = join(dir, "other");
    writeFileSync(other, Buffer.concat([Buffer.from("SQLite format 3\0"), whole.subarray(16)]));
    assert.equal((await refusal(other)).reason, "not-a-backup");
    writeFileSync(other, Buffer.concat([whole, Buffer.from("x")]));
    assert.equal((await refusal(other)).reason, "trailing-bytes");
  });

  it("a newer format version is refused with a clear message, before anything else is read", async () => {
    const path = await writeBackup([pseudoRandom(100, 9)]);
    const copy = readFileSync(path);
    copy.writeUInt32LE(BACKUP_FORMAT_VERSION + 1, 8);
    const newer = join(dir, "newer");
    writeFileSync(newer, copy);
    const e = await refusal(newer);
    assert.equal(e.reason, "newer-version");
    assert.equal(e.code, "INVALID_ARGUMENT");
    assert.match(e.message, /format version 2; this nexus-raft reads up to version 1/);
  });

  it("leaves no stray files in the folder", () => {
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith(".tmp")),
      [],
    );
  });

  it("gathers small writes into few frames: 100,000 writes of 50 bytes cost a few frames, not 100,000", async () => {
    const chunks = Array.from({ length: 100_000 }, (_, i) => pseudoRandom(50, i));
    const path = await writeBackup(chunks);
    const data = Buffer.concat(chunks);
    // Without gathering, every write would be a frame of its own: 8 bytes more each.
    assert.ok(
      readFileSync(path).length < data.length + 64 * 1024,
      String(readFileSync(path).length),
    );
    const b = await openBackupFile(path);
    const got: Buffer[] = [];
    for await (const c of b.data) got.push(Buffer.from(c));
    await b.close();
    assert.ok(Buffer.concat(got).equals(data));
    assert.equal((await verifyBackupFile(path)).dataBytes, data.length);
  });
});
