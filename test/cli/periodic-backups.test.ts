/**
 * The periodic backup flags and file names (src/cli/periodic-backups.ts): which flags go
 * together, the defaults, and that only the schedule's own names are ever pruned or swept.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { FlagError, parseFlags } from "../../src/cli/flags.js";
import {
  PERIODIC_BACKUP_FLAGS,
  backupFileName,
  isBackupFileName,
  periodicBackupConfigOf,
} from "../../src/cli/periodic-backups.js";

const configOf = (argv: string[]): ReturnType<typeof periodicBackupConfigOf> =>
  periodicBackupConfigOf(parseFlags(argv, [...PERIODIC_BACKUP_FLAGS]));

describe("periodic backup flags", () => {
  for (const c of [
    { name: "none given: no periodic backups", argv: [], want: undefined },
    {
      name: "interval and folder, keep defaults to 7",
      argv: ["-backup-interval=1h30m", "-backup-dir=b"],
      want: { intervalMs: 5_400_000, dir: resolve("b"), keep: 7, uploadCmd: undefined },
    },
    {
      name: "keep and an upload command",
      argv: [
        "-backup-interval",
        "2s",
        "-backup-dir",
        "/x",
        "-backup-keep",
        "2",
        "-backup-upload-cmd",
        "ship",
      ],
      want: { intervalMs: 2000, dir: "/x", keep: 2, uploadCmd: "ship" },
    },
  ]) {
    it(c.name, () => assert.deepEqual(configOf(c.argv), c.want));
  }
  for (const c of [
    {
      name: "a folder without an interval",
      argv: ["-backup-dir=b"],
      want: /-backup-dir needs -backup-interval/,
    },
    {
      name: "an upload command without an interval",
      argv: ["-backup-upload-cmd=x"],
      want: /needs -backup-interval/,
    },
    { name: "keep without an interval", argv: ["-backup-keep=3"], want: /needs -backup-interval/ },
    {
      name: "an interval without a folder",
      argv: ["-backup-interval=1m"],
      want: /needs -backup-dir/,
    },
    {
      name: "an interval under 1s",
      argv: ["-backup-interval=999ms", "-backup-dir=b"],
      want: /at least 1s/,
    },
    {
      name: "an interval of 0",
      argv: ["-backup-interval=0", "-backup-dir=b"],
      want: /at least 1s/,
    },
    {
      name: "not a duration",
      argv: ["-backup-interval=hourly", "-backup-dir=b"],
      want: /must be a duration/,
    },
    {
      name: "an empty upload command",
      argv: ["-backup-interval=1m", "-backup-dir=b", "-backup-upload-cmd="],
      want: /is empty/,
    },
    {
      name: "keep 0",
      argv: ["-backup-interval=1m", "-backup-dir=b", "-backup-keep=0"],
      want: /backup-keep/,
    },
  ]) {
    it(`refuses ${c.name}`, () =>
      assert.throws(
        () => configOf(c.argv),
        (e: unknown) => e instanceof FlagError && c.want.test(e.message),
      ));
  }
});

describe("periodic backup file names", () => {
  const name = backupFileName(new Date("2026-12-03T07:15:00.123Z"), 42);
  it("names the time and index, sortable by time", () => {
    assert.equal(name, "nexus-backup-2026-12-03T07-15-00.123Z-index-42.nexus-backup");
    const later = backupFileName(new Date("2026-12-03T08:00:00.000Z"), 7);
    assert.ok(later > name);
  });
  for (const c of [
    { name, tmp: false, want: true },
    { name: `${name}.tmp`, tmp: true, want: true },
    { name: `${name}.tmp`, tmp: false, want: false },
    { name, tmp: true, want: false },
    { name: "cluster.nexus-backup", tmp: false, want: false },
    { name: "notes.txt.tmp", tmp: true, want: false },
  ]) {
    it(`${c.name}${c.tmp ? " as a temporary file" : ""}: ${c.want}`, () =>
      assert.equal(isBackupFileName(c.name, c.tmp), c.want));
  }
});
