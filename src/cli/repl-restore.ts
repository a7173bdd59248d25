/**
 * `repl <nexus_url> restore <file> [-y|--yes]`: restores a backup file into the running cluster
 * (NexusBackup.Restore). The file is checked here first and its header shown; without --yes the
 * operator must type "yes", because every replica's state is replaced.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { restoreToCluster } from "../api/backup-client.js";
import type { ClientOptions } from "../api/client.js";
import { BackupFileError, verifyBackupFile } from "../backup/backup-file.js";
import { isNexusError } from "../errors/index.js";
import { EXIT, exitCodeOf } from "./exit-codes.js";
import type { Io } from "./serve.js";

/** Asks one question and resolves with the answer line. */
export type Ask = (question: string) => Promise<string>;

/** Reads the answer from standard input (an empty answer when it is closed). */
export const askOnStdin: Ask = (question) =>
  new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: false });
    let answered = false;
    process.stderr.write(question);
    rl.once("line", (line) => {
      answered = true;
      rl.close();
      resolve(line);
    });
    rl.once("close", () => {
      if (!answered) resolve("");
    });
  });

/** The restore's arguments after the command word. */
export interface RestoreArgs {
  readonly file: string;
  readonly yes: boolean;
}

/** Parses `<file> [-y|--yes]`; undefined with a reason when they are wrong. */
export function parseRestoreArgs(args: readonly string[]): RestoreArgs | string {
  let yes = false;
  const rest: string[] = [];
  for (const a of args) {
    if (a === "-y" || a === "--yes" || a === "-yes") yes = true;
    else if (a.startsWith("-")) return `unknown option "${a}" (restore takes <file> [-y|--yes])`;
    else rest.push(a);
  }
  if (rest.length !== 1 || rest[0] === "") return "restore takes one backup <file>";
  return { file: rest[0]!, yes };
}

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Runs the restore command; resolves with the exit code. */
export async function runReplRestore(
  address: string,
  args: RestoreArgs,
  io: Io,
  security: Pick<ClientOptions, "tls" | "token">,
  ask: Ask = askOnStdin,
  name = "repl",
): Promise<number> {
  let v: Awaited<ReturnType<typeof verifyBackupFile>>;
  try {
    v = await verifyBackupFile(args.file);
  } catch (err) {
    if (err instanceof BackupFileError) {
      io.err(`${name}: ${err.message}; nothing was sent\n`);
      return EXIT.FAILED;
    }
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      io.err(`${name}: ${args.file} does not exist; give the path of a backup file\n`);
      return EXIT.USAGE;
    }
    throw err;
  }
  const h = v.header;
  io.err(
    `Backup ${args.file}: ${h.storeKind} store of cluster "${h.clusterName}" at index ${h.index} ` +
      `(term ${h.term}), taken ${h.createdAt} from ${h.source}, ${mb(v.dataBytes)} of data\n`,
  );
  if (!args.yes) {
    const answer = await ask(
      `This replaces the whole replicated state of the cluster at ${address}, on every replica; ` +
        "saves made after the backup are lost. Type yes to continue: ",
    );
    if (answer.trim().toLowerCase() !== "yes") {
      io.err(`${name}: restore cancelled; nothing changed\n`);
      return EXIT.FAILED;
    }
  }
  const started = Date.now();
  try {
    const r = await restoreToCluster(
      address,
      createReadStream(args.file, { highWaterMark: 1024 * 1024 }),
      security,
    );
    const s = (Date.now() - started) / 1000;
    io.out(
      `Restored ${args.file} (${mb(r.bytes)}, backup index ${r.backupIndex}) into the cluster at ` +
        `index ${r.index} in ${s.toFixed(1)} s; every replica holds it from that index on\n`,
    );
    return EXIT.OK;
  } catch (err) {
    if (!isNexusError(err)) throw err;
    const what =
      err.code === "UNKNOWN_OUTCOME"
        ? "; the restore may still take effect: check the data before running it again"
        : "";
    io.err(`${name}: ${err.message}${what}\n`);
    return exitCodeOf(err.code);
  }
}
