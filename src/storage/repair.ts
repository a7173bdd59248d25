/**
 * `nexus wal repair <dir>`: makes a corrupted WAL openable again by keeping everything up to the
 * last good record. Nothing is destroyed: the damaged bytes of the segment are copied to
 * `<segment>.broken` before they are zeroed, and every later segment is renamed `<name>.broken`.
 * Repair is explicit, never automatic: a node refuses to start until an operator runs it.
 */
import { join } from "node:path";
import type { FsLayer } from "./fs-layer.js";
import { createNodeFs } from "./fs-layer.js";
import { Wal, WalCorruptedError } from "./wal.js";

/** What a repair did. */
export interface RepairReport {
  /** One line per action, for the operator. */
  readonly actions: string[];
  /** The last entry index kept. */
  readonly lastIndex: number;
}

const SEGMENT_RE = /^[0-9a-f]{16}-[0-9a-f]{16}\.wal$/;

/** Repairs the WAL in dir (see the module comment). Throws if dir is not a WAL. */
export async function repairWal(dir: string, fs: FsLayer = createNodeFs()): Promise<RepairReport> {
  if (!(await fs.exists(dir))) throw new Error(`${dir} does not exist`);
  const actions: string[] = [];
  for (let attempt = 0; attempt < 1000; attempt++) {
    try {
      const { wal, state } = await Wal.open(dir, { fs });
      await wal.close();
      if (state.tornTail !== undefined) {
        actions.push(
          `cut a torn record of ${state.tornTail.bytes} bytes at the end of ${state.tornTail.file} (offset ${state.tornTail.offset})`,
        );
      }
      if (actions.length === 0) actions.push("the write-ahead log is intact; nothing to repair");
      return { actions, lastIndex: state.lastIndex };
    } catch (err) {
      if (!(err instanceof WalCorruptedError)) throw err;
      const names = (await fs.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
      const at = names.indexOf(err.file);
      if (at < 0) throw err;
      // Later segments cannot be trusted to follow on: move them aside.
      for (const later of names.slice(at + 1)) {
        await fs.rename(join(dir, later), join(dir, `${later}.broken`));
        actions.push(`moved ${later} aside to ${later}.broken`);
      }
      // Keep the damaged bytes for inspection, then zero them in the segment.
      const path = join(dir, err.file);
      const f = await fs.open(path, "r+");
      try {
        const size = await f.size();
        const len = size - err.offset;
        if (len > 0) {
          const tail = new Uint8Array(len);
          await f.read(tail, err.offset);
          let end = tail.byteLength;
          while (end > 0 && tail[end - 1] === 0) end--;
          const broken = await fs.open(`${path}.broken`, "w");
          await broken.write(tail.subarray(0, end), 0);
          await broken.datasync();
          await broken.close();
          await f.write(new Uint8Array(len), err.offset);
          await f.datasync();
          actions.push(
            `kept ${err.file} up to offset ${err.offset}; moved ${end} damaged bytes to ${err.file}.broken`,
          );
        }
      } finally {
        await f.close();
      }
      await fs.syncDir(dir);
    }
  }
  throw new Error(`could not repair ${dir}: too many damaged places`);
}
