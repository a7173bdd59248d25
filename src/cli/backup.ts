/**
 * `nexus backup <host:grpcPort> <file>`: streams a consistent backup from a node into a file
 * (src/backup/backup-file.ts), with a progress line on stderr. `nexus backup verify <file>` and
 * `nexus backup info <file>` check and describe a file without a cluster.
 */
import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { streamBackup } from "../api/backup-client.js";
import {
  BackupFileError,
  BackupWriter,
  verifyBackupFile,
  openBackupFile,
} from "../backup/backup-file.js";
import type { BackupHeader } from "../backup/backup-file.js";
import { NexusError, isNexusError } from "../errors/index.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import { FlagError, bool, parseFlags, str } from "./flags.js";
import type { FlagSpec } from "./flags.js";
import { CLIENT_SECURITY_FLAGS, clientSecurityOf } from "./client-security-flags.js";

export const BACKUP_USAGE = `usage: nexus backup [-local] [-cacert f -cert f -key f -token t] <host:grpcPort> <file>
       nexus backup verify <file>
       nexus backup info [-o text|json] <file>

backup   takes a consistent backup of the replicated state at one log index from the node at
         host:grpcPort, without stopping writes, into <file> (written as <file>.tmp, fsynced and
         renamed when complete). It first confirms with the leader which index is committed and
         waits until the node applied it, so the backup holds every save acknowledged before it
         began. A progress line (bytes, rate) goes to stderr.
         -local: skip that barrier (the node's store as it is, perhaps behind the leader).
         -cacert, -cert, -key, -token (or NEXUS_TOKEN): TLS and a token with the admin
         permission, for a node with TLS or -auth-file (as repl takes them).
verify   checks a backup file: header, every chunk's checksum, the SHA-256 and the end marker.
         Exit 0 when it is whole, 1 when it is damaged, truncated or from a newer version.
info     prints a backup file's header (-o json for JSON).
`;

const MiB = 1024 * 1024;
const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

interface Io {
  out(s: string): void;
  err(s: string): void;
}

/** Runs `nexus backup ...`; resolves with the exit code. */
export async function runBackup(argv: readonly string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "verify") return runVerify(rest, io);
  if (sub === "info") return runInfo(rest, io);
  const specs: FlagSpec[] = [
    { name: "local", kind: "bool", help: "skip the read barrier" },
    ...CLIENT_SECURITY_FLAGS,
  ];
  let local: boolean;
  let security: ReturnType<typeof clientSecurityOf>;
  let addr: string;
  let file: string;
  try {
    const f = parseFlags(argv, specs, { allowPositionals: true });
    if (f.help) {
      io.out(BACKUP_USAGE);
      return EXIT.OK;
    }
    if (f.positionals.length !== 2) {
      throw new FlagError(`expected <host:grpcPort> <file>, got ${f.positionals.length} arguments`);
    }
    local = bool(f, "local");
    security = clientSecurityOf(f);
    addr = f.positionals[0]!;
    file = resolve(f.positionals[1]!);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`nexus backup: ${err.message}\n\n${BACKUP_USAGE}`);
    return EXIT.USAGE;
  }
  const started = Date.now();
  let writer: BackupWriter | undefined;
  let header: BackupHeader | undefined;
  const hash = createHash("sha256");
  let lastShown = started;
  const tty = process.stderr.isTTY === true;
  const progress = (final: boolean): void => {
    const now = Date.now();
    if (!final && now - lastShown < (tty ? 250 : 2000)) return;
    lastShown = now;
    const bytes = writer?.dataBytes ?? 0;
    const secs = Math.max(0.001, (now - started) / 1000);
    const line = `backup: ${mib(bytes)}, ${mib(bytes / secs)}/s`;
    io.err(tty && !final ? `\r${line}` : `${tty ? "\r" : ""}${line}\n`);
  };
  // Ctrl-C (or SIGTERM) ends the stream; the temporary file is removed before exiting.
  const cancel = new AbortController();
  let interrupted: NodeJS.Signals | undefined;
  const onSignal = (s: NodeJS.Signals): void => {
    interrupted ??= s;
    cancel.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    let complete = false;
    for await (const ev of streamBackup(addr, { local, signal: cancel.signal, ...security })) {
      if (interrupted !== undefined) break;
      if (ev.kind === "header") {
        header = {
          ...ev.header,
          createdAt: new Date(started).toISOString(),
          source: addr,
        };
        writer = await BackupWriter.create(file, header);
      } else if (ev.kind === "data") {
        hash.update(ev.data);
        await writer!.write(ev.data);
        progress(false);
      } else {
        const sha = hash.digest();
        if (ev.dataBytes !== writer?.dataBytes || !sha.equals(ev.sha256)) {
          throw new NexusError(
            "CORRUPTED",
            `the data received (${writer?.dataBytes ?? 0} bytes) does not match what the node sent (${ev.dataBytes} bytes, SHA-256): the transfer was damaged; run the backup again`,
          );
        }
        complete = true;
      }
    }
    if (interrupted !== undefined) throw new NexusError("STOPPED", "interrupted");
    if (!complete || writer === undefined || header === undefined) {
      throw new NexusError(
        "UNREACHABLE",
        `the backup stream from ${addr} ended before it was complete; nothing was written, run it again`,
      );
    }
    const done = await writer.finish();
    progress(true);
    const secs = (Date.now() - started) / 1000;
    io.out(
      `backup of ${header.storeKind} cluster "${header.clusterName}" at index ${header.index} ` +
        `(term ${header.term}): ${done.dataBytes} bytes in ${secs.toFixed(1)} s, sha256 ${done.sha256}\n` +
        `written to ${file}\n`,
    );
    return EXIT.OK;
  } catch (err) {
    await writer?.abort();
    if (interrupted !== undefined) {
      io.err(`${tty ? "\n" : ""}nexus backup: ${interrupted}: stopped; nothing was written\n`);
      return EXIT.INTERRUPTED;
    }
    if (!(err instanceof NexusError)) throw err;
    io.err(`${tty ? "\n" : ""}nexus backup: ${err.message}\n`);
    // A backup changes nothing: a failure is never an unknown outcome.
    return err.code === "UNKNOWN_OUTCOME" ? EXIT.FAILED : exitCodeOf(err.code);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function fileArg(
  argv: readonly string[],
  specs: FlagSpec[],
  what: string,
  io: Io,
): { file: string; f: ReturnType<typeof parseFlags> } | number {
  try {
    const f = parseFlags(argv, specs, { allowPositionals: true });
    if (f.help) {
      io.out(BACKUP_USAGE);
      return EXIT.OK;
    }
    if (f.positionals.length !== 1) throw new FlagError(`expected exactly one <file>`);
    return { file: f.positionals[0]!, f };
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    io.err(`nexus backup ${what}: ${err.message}\n\n${BACKUP_USAGE}`);
    return EXIT.USAGE;
  }
}

function failed(what: string, err: unknown, io: Io): number {
  if (err instanceof BackupFileError || isNexusError(err)) {
    io.err(`nexus backup ${what}: ${(err as Error).message}\n`);
    return EXIT.FAILED;
  }
  const code = (err as { code?: unknown }).code;
  if (code === "ENOENT" || code === "EACCES" || code === "EISDIR") {
    io.err(`nexus backup ${what}: cannot read ${(err as Error).message}\n`);
    return EXIT.FAILED;
  }
  throw err;
}

async function runVerify(argv: readonly string[], io: Io): Promise<number> {
  const a = fileArg(argv, [], "verify", io);
  if (typeof a === "number") return a;
  try {
    const v = await verifyBackupFile(a.file);
    io.out(
      `${a.file}: a whole backup (format ${v.formatVersion}) of ${v.header.storeKind} cluster ` +
        `"${v.header.clusterName}" at index ${v.header.index} (term ${v.header.term}), ` +
        `${v.dataBytes} data bytes, every checksum matches\n`,
    );
    return EXIT.OK;
  } catch (err) {
    return failed("verify", err, io);
  }
}

async function runInfo(argv: readonly string[], io: Io): Promise<number> {
  const a = fileArg(
    argv,
    [{ name: "o", kind: "string", default: "text", help: "text or json" }],
    "info",
    io,
  );
  if (typeof a === "number") return a;
  const format = str(a.f, "o");
  if (format !== "text" && format !== "json") {
    io.err(`nexus backup info: flag -o must be text or json, got "${String(format)}"\n`);
    return EXIT.USAGE;
  }
  try {
    const b = await openBackupFile(a.file);
    await b.close();
    const h = b.header;
    if (format === "json") {
      io.out(`${JSON.stringify({ formatVersion: b.formatVersion, ...h }, null, 2)}\n`);
      return EXIT.OK;
    }
    io.out(
      `format version: ${b.formatVersion}\n` +
        `store:          ${h.storeKind}\n` +
        `cluster:        ${h.clusterName}\n` +
        `index:          ${h.index}\n` +
        `term:           ${h.term}\n` +
        `nexus version:  ${h.nexusVersion}\n` +
        `taken at:       ${h.createdAt} from ${h.source}\n` +
        `members:\n${h.members.map((m) => `  ${m.id} => ${m.url} (${m.role})\n`).join("")}`,
    );
    return EXIT.OK;
  } catch (err) {
    return failed("info", err, io);
  }
}
