/**
 * Periodic backups of a node process (`-backup-interval`, `-backup-dir`, `-backup-keep`,
 * `-backup-upload-cmd`): every node is given the flags, and at each interval the one that is the
 * leader then writes a backup file (src/backup's format) into the folder, keeps the newest N and
 * hands the new file to the upload command. A follower does nothing, so a cluster writes one
 * backup per interval wherever its leader is.
 *
 * Files are named `nexus-backup-<UTC time>-index-<index>.nexus-backup` (names sort by time) and
 * written as `<name>.tmp`, fsynced, renamed and the folder fsynced (BackupWriter): a backup cut by
 * a stop is removed, and one cut by a crash is removed when the node starts again. Only files with
 * that name shape are ever deleted by the retention.
 *
 * A failed backup or upload is logged and counted; it never stops the node.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { BackupWriter } from "../backup/backup-file.js";
import type { NexusLogger } from "../node/options.js";
import type { Replicator } from "../node/replicator.js";
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, int, str } from "./flags.js";
import { parseDurationMs } from "./node-flags.js";

export const PERIODIC_BACKUP_FLAGS: readonly FlagSpec[] = [
  {
    name: "backup-interval",
    kind: "string",
    help: "take a backup every <duration> (e.g. 1h, 30m; at least 1s) into -backup-dir, on the node that is the leader then; give it to every node (ours; default none)",
  },
  {
    name: "backup-dir",
    kind: "string",
    help: "folder of the periodic backups, created if missing; files nexus-backup-<time>-index-<index>.nexus-backup (ours)",
  },
  {
    name: "backup-keep",
    kind: "int",
    min: 1,
    max: 100_000,
    default: 7,
    help: "how many periodic backups to keep in -backup-dir; older ones are deleted (ours)",
  },
  {
    name: "backup-upload-cmd",
    kind: "string",
    help: 'a command run by /bin/sh after each periodic backup with the file\'s path appended as its last argument (passed as an argument, never put into the command text), e.g. "/usr/local/bin/ship-backup"; a failure is logged and counted (ours)',
  },
];

/** The periodic backup settings, validated. */
export interface PeriodicBackupConfig {
  readonly intervalMs: number;
  /** Absolute. */
  readonly dir: string;
  readonly keep: number;
  readonly uploadCmd: string | undefined;
}

const MIN_INTERVAL_MS = 1000;

/**
 * The settings from the flags, or undefined when -backup-interval is not given. Throws FlagError
 * when they do not go together or a value is wrong.
 */
export function periodicBackupConfigOf(f: ParsedFlags): PeriodicBackupConfig | undefined {
  const interval = str(f, "backup-interval");
  const dir = str(f, "backup-dir");
  const upload = str(f, "backup-upload-cmd");
  const keepGiven = f.given?.has("backup-keep") ?? false;
  if (interval === undefined || interval.trim() === "") {
    for (const [name, given] of [
      ["backup-dir", dir !== undefined],
      ["backup-upload-cmd", upload !== undefined],
      ["backup-keep", keepGiven],
    ] as const) {
      if (given) {
        throw new FlagError(
          `flag -${name} needs -backup-interval <duration> (e.g. -backup-interval 1h): without it no periodic backup is taken`,
        );
      }
    }
    return undefined;
  }
  const intervalMs = parseDurationMs("backup-interval", interval);
  if (intervalMs < MIN_INTERVAL_MS) {
    throw new FlagError(
      `flag -backup-interval must be at least 1s, got "${interval}" (leave it out for no periodic backups)`,
    );
  }
  if (dir === undefined || dir.trim() === "") {
    throw new FlagError(
      "flag -backup-interval needs -backup-dir <dir>: the folder the backups are written to",
    );
  }
  if (upload !== undefined && upload.trim() === "") {
    throw new FlagError(
      'flag -backup-upload-cmd is empty: give a command, e.g. -backup-upload-cmd "/usr/local/bin/ship-backup", or leave it out',
    );
  }
  return { intervalMs, dir: resolve(dir.trim()), keep: int(f, "backup-keep")!, uploadCmd: upload };
}

/** What periodic backups report (src/ops/metrics.ts implements it). */
export interface BackupMetrics {
  /** A backup file was written: its data bytes and how long it took. */
  backupTaken(ms: number, bytes: number): void;
  backupFailed(): void;
  /** The upload command ended: exit 0 or not (or could not run). */
  backupUploaded(ms: number, ok: boolean): void;
}

const NAME = /^nexus-backup-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z)-index-(\d+)\.nexus-backup$/;

/** The file name of a backup taken at `at` of index `index`. */
export function backupFileName(at: Date, index: number): string {
  return `nexus-backup-${at.toISOString().replace(/:/g, "-")}-index-${index}.nexus-backup`;
}

/** Whether a name is one of the periodic backups' (or its temporary file, with `tmp`). */
export function isBackupFileName(name: string, tmp = false): boolean {
  if (!tmp) return NAME.test(name);
  const t = BackupWriter.tmpPathOf("");
  return name.endsWith(t) && NAME.test(name.slice(0, -t.length));
}

/** A backup written by PeriodicBackups. */
export interface PeriodicBackupWritten {
  readonly file: string;
  readonly index: number;
  readonly term: number;
  readonly dataBytes: number;
  readonly ms: number;
}

export interface PeriodicBackupsOptions {
  readonly config: PeriodicBackupConfig;
  readonly replicator: Replicator;
  readonly logger: NexusLogger;
  readonly metrics?: BackupMetrics | undefined;
  /** The version written in each file's header. */
  readonly nexusVersion: string;
  /** The node's gRPC address, the header's `source`. */
  readonly source: string;
}

/**
 * Makes the backup folder, checks it is writable and removes the temporary backups a crash left
 * there: before the node starts. Throws FlagError when the folder cannot be made or written to.
 */
export async function prepareBackupDir(
  config: PeriodicBackupConfig,
  logger: NexusLogger,
): Promise<void> {
  const dir = config.dir;
  try {
    await mkdir(dir, { recursive: true });
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(), { code: "ENOTDIR" });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new FlagError(
      `flag -backup-dir ${dir} is not a folder this node can write to (${code}): give another folder or fix its permissions`,
    );
  }
  for (const name of await readdir(dir)) {
    if (!isBackupFileName(name, true)) continue;
    await rm(join(dir, name), { force: true });
    logger.warn({ file: join(dir, name) }, "removed a backup cut short by a crash");
  }
}

/**
 * The schedule of one node (its folder prepared by prepareBackupDir). stop() ends the schedule
 * and a backup in progress (its temporary file removed) and waits for an upload under way.
 */
export class PeriodicBackups {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private uploading: ChildProcess | undefined;
  private stopped = false;

  constructor(private readonly o: PeriodicBackupsOptions) {}

  /** Takes a backup at the end of every interval while this node is the leader. */
  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.o.config.intervalMs);
  }

  private async tick(): Promise<void> {
    let leader: boolean;
    try {
      leader = this.o.replicator.status().role === "leader";
    } catch {
      return; // stopped
    }
    if (!leader) return;
    let written: PeriodicBackupWritten | undefined;
    try {
      written = await this.takeOne();
    } catch (err) {
      if (this.stopped) return;
      this.o.metrics?.backupFailed();
      this.o.logger.error(
        { error: (err as Error).message, dir: this.o.config.dir },
        "periodic backup failed; the next one is taken at the next interval",
      );
      return;
    }
    if (written === undefined) return;
    this.o.metrics?.backupTaken(written.ms, written.dataBytes);
    this.o.logger.info(
      {
        file: written.file,
        index: written.index,
        term: written.term,
        bytes: written.dataBytes,
        ms: written.ms,
      },
      "periodic backup written",
    );
    await this.prune();
    if (this.o.config.uploadCmd !== undefined) await this.upload(written.file);
  }

  /** Takes one backup into the folder; undefined when stopped meanwhile. */
  private async takeOne(): Promise<PeriodicBackupWritten | undefined> {
    const started = Date.now();
    const b = await this.o.replicator.backup();
    const it = b.stream[Symbol.asyncIterator]();
    const file = join(this.o.config.dir, backupFileName(new Date(started), b.index));
    let writer: BackupWriter | undefined;
    try {
      writer = await BackupWriter.create(file, {
        storeKind: b.storeKind,
        clusterName: b.clusterName,
        index: b.index,
        term: b.term,
        members: b.members.map((m) => ({ ...m })),
        nexusVersion: this.o.nexusVersion,
        createdAt: new Date(started).toISOString(),
        source: this.o.source,
      });
      for (;;) {
        if (this.stopped) {
          await writer.abort();
          return undefined;
        }
        const next = await it.next();
        if (next.done === true) break;
        await writer.write(next.value);
      }
      const done = await writer.finish();
      return {
        file,
        index: b.index,
        term: b.term,
        dataBytes: done.dataBytes,
        ms: Date.now() - started,
      };
    } catch (err) {
      await writer?.abort();
      throw err;
    } finally {
      await it.return?.();
    }
  }

  /** Deletes all but the newest `keep` backups (by name, which sorts by time). */
  private async prune(): Promise<void> {
    try {
      const names = (await readdir(this.o.config.dir)).filter((n) => isBackupFileName(n)).sort();
      for (const name of names.slice(0, Math.max(0, names.length - this.o.config.keep))) {
        await rm(join(this.o.config.dir, name), { force: true });
        this.o.logger.info({ file: join(this.o.config.dir, name) }, "old periodic backup deleted");
      }
    } catch (err) {
      this.o.logger.error(
        { error: (err as Error).message, dir: this.o.config.dir },
        "could not delete old periodic backups",
      );
    }
  }

  /** Runs the upload command with the file's path as its last argument. */
  private async upload(file: string): Promise<void> {
    const started = Date.now();
    const cmd = this.o.config.uploadCmd!;
    const result = await new Promise<{ code: number | null; signal: string | null; err?: Error }>(
      (done) => {
        // The path is "$1" of the script, an argument: never parsed by the shell as text.
        const p = spawn("/bin/sh", ["-c", `${cmd} "$1"`, "nexus-backup-upload", file], {
          stdio: ["ignore", "ignore", "pipe"],
        });
        this.uploading = p;
        let stderr = "";
        p.stderr.on("data", (b: Buffer) => {
          if (stderr.length < 4096) stderr += b.toString();
        });
        p.once("error", (err) => done({ code: null, signal: null, err }));
        p.once("close", (code, signal) =>
          done({ code, signal, ...(code === 0 ? {} : { err: new Error(stderr.trim()) }) }),
        );
      },
    );
    this.uploading = undefined;
    const ms = Date.now() - started;
    const ok = result.code === 0;
    this.o.metrics?.backupUploaded(ms, ok);
    if (ok) this.o.logger.info({ file, ms }, "backup upload command done");
    else {
      this.o.logger.error(
        {
          file,
          command: cmd,
          exitCode: result.code,
          signal: result.signal,
          stderr: result.err?.message ?? "",
        },
        "backup upload command failed; the backup stays in -backup-dir",
      );
    }
  }

  /**
   * Ends the schedule; a backup in progress is abandoned (its temporary file removed) and an
   * upload command still running is sent SIGTERM.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.uploading?.kill("SIGTERM");
    await this.running;
  }
}
