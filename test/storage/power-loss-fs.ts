/**
 * An in-memory FsLayer that models what survives a crash. A file's durable content is what it
 * held at its last fdatasync; a directory's durable entries (creations, renames, removals) are
 * what it held at its last directory fsync. crash() decides what else survives:
 *
 * - data: "none" lost (a process crash: the kernel still writes the page cache out), "all"
 *   unsynced writes lost, "torn" a random byte prefix of each file's newest unsynced write kept,
 *   "sectors" a random subset of the 512-byte sectors of the unsynced writes kept (pages of one
 *   batch reaching a preallocated file out of order), or an exact prefix / sector choice;
 * - directories: unsynced operations "kept", "lost", or a random "prefix" of them (a journaling
 *   file system commits metadata in order).
 *
 * Writes and syncs can be made to fail. Handles and views opened before a crash fail afterwards,
 * as a dead process's descriptors would.
 */
import { dirname, basename } from "node:path";
import type { FsFile, FsLayer } from "../../src/storage/fs-layer.js";

/** The sector size of the model: the unit a torn write keeps or loses in "sectors" mode. */
export const SECTOR = 512;

/** What happens to file data written since the last fdatasync. */
export type DataLoss =
  | "none"
  | "all"
  | "torn"
  | "sectors"
  | { readonly prefix: number }
  | { readonly sectors: (sector: number) => boolean };

/** What happens to directory operations since the directory's last fsync. */
export type DirLoss = "kept" | "lost" | "prefix";

export interface CrashOptions {
  readonly data?: DataLoss;
  readonly dirs?: DirLoss;
}

interface Inode {
  data: Uint8Array;
  size: number;
  durable: Uint8Array;
  durableSize: number;
  /** Writes since the last sync, oldest first. */
  unsynced: { pos: number; bytes: Uint8Array }[];
}

type DirOp = (entries: Map<string, Inode>) => void;

interface Dir {
  entries: Map<string, Inode>;
  durable: Map<string, Inode>;
  /** Operations since the last fsync, oldest first. */
  ops: DirOp[];
}

export class PowerLossFs implements FsLayer {
  /** Directories as a process sees them now, by path. */
  private dirs = new Map<string, Dir>();
  /** Directories as their parents' last fsync left them (created directories count at once). */
  private durableDirs = new Map<string, Dir>();
  /** Bumped at each crash: handles opened before it fail, like a dead process's descriptors. */
  generation = 0;
  failWrites = false;
  failSyncs = false;

  private dir(path: string, create = false): Dir {
    let d = this.dirs.get(path);
    if (d === undefined) {
      if (!create)
        throw Object.assign(new Error(`ENOENT: no such directory ${path}`), { code: "ENOENT" });
      d = { entries: new Map(), durable: new Map(), ops: [] };
      this.dirs.set(path, d);
      this.durableDirs.set(path, d);
    }
    return d;
  }

  private lookup(path: string): Inode | undefined {
    return this.dirs.get(dirname(path))?.entries.get(basename(path));
  }

  private op(d: Dir, f: DirOp): void {
    f(d.entries);
    d.ops.push(f);
  }

  async open(path: string, mode: "r" | "r+" | "w"): Promise<FsFile> {
    const d = this.dir(dirname(path));
    const name = basename(path);
    let ino = d.entries.get(name);
    if (ino === undefined || mode === "w") {
      if (mode !== "w") throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      if (ino === undefined) {
        const created: Inode = {
          data: new Uint8Array(0),
          size: 0,
          durable: new Uint8Array(0),
          durableSize: 0,
          unsynced: [],
        };
        this.op(d, (m) => m.set(name, created));
        ino = created;
      } else {
        ino.size = 0;
      }
    }
    const node = ino;
    const gen = this.generation;
    const state = (): { generation: number; failWrites: boolean; failSyncs: boolean } => this;
    const alive = (): void => {
      if (state().generation !== gen) throw new Error("EBADF: the process died in a crash");
    };
    const grow = (n: number): void => {
      if (n <= node.data.byteLength) return;
      const b = new Uint8Array(Math.max(n, node.data.byteLength * 2));
      b.set(node.data.subarray(0, node.size));
      node.data = b;
    };
    return {
      async write(buf, position) {
        alive();
        if (state().failWrites) throw new Error("EIO: injected write failure");
        grow(position + buf.byteLength);
        if (position > node.size) node.data.fill(0, node.size, position);
        node.data.set(buf, position);
        node.size = Math.max(node.size, position + buf.byteLength);
        node.unsynced.push({ pos: position, bytes: buf.slice() });
      },
      async datasync() {
        alive();
        if (state().failSyncs) throw new Error("EIO: injected sync failure");
        node.durable = node.data.slice(0, node.size);
        node.durableSize = node.size;
        node.unsynced = [];
      },
      async read(buf, position) {
        alive();
        const n = Math.max(0, Math.min(buf.byteLength, node.size - position));
        buf.set(node.data.subarray(position, position + n));
        return n;
      },
      readSync(buf, position) {
        alive();
        const n = Math.max(0, Math.min(buf.byteLength, node.size - position));
        buf.set(node.data.subarray(position, position + n));
        return n;
      },
      async truncate(length) {
        alive();
        grow(length);
        if (length > node.size) node.data.fill(0, node.size, length);
        node.size = length;
      },
      async size() {
        return node.size;
      },
      async close() {},
    };
  }

  async readdir(dir: string): Promise<string[]> {
    return [...this.dir(dir).entries.keys()].sort();
  }

  async mkdirp(dir: string): Promise<void> {
    // Directories themselves are durable once created (their renames and removals are not).
    this.dir(dir, true);
  }

  async rename(from: string, to: string): Promise<void> {
    if (this.dirs.has(from)) {
      // Directory rename (WAL creation): durable once the parent is synced.
      const d = this.dirs.get(from)!;
      this.dirs.delete(from);
      this.dirs.set(to, d);
      return;
    }
    const ino = this.lookup(from);
    if (ino === undefined) throw Object.assign(new Error(`ENOENT: ${from}`), { code: "ENOENT" });
    const src = this.dir(dirname(from));
    const dst = this.dir(dirname(to));
    const a = basename(from);
    const b = basename(to);
    if (src === dst) {
      this.op(src, (m) => {
        m.delete(a);
        m.set(b, ino);
      });
    } else {
      this.op(src, (m) => m.delete(a));
      this.op(dst, (m) => m.set(b, ino));
    }
  }

  async unlink(path: string): Promise<void> {
    const d = this.dirs.get(dirname(path));
    const name = basename(path);
    if (d !== undefined && d.entries.has(name)) this.op(d, (m) => m.delete(name));
  }

  async rmrf(path: string): Promise<void> {
    if (this.dirs.has(path)) {
      this.dirs.delete(path);
      return;
    }
    await this.unlink(path);
  }

  async syncDir(dir: string): Promise<void> {
    if (this.failSyncs) throw new Error("EIO: injected sync failure");
    const d = this.dirs.get(dir);
    if (d !== undefined) {
      d.durable = new Map(d.entries);
      d.ops = [];
    }
    // Child directories created, renamed or removed in it are durable now.
    for (const p of new Set([...this.dirs.keys(), ...this.durableDirs.keys()])) {
      if (dirname(p) !== dir || p === dir) continue;
      const cur = this.dirs.get(p);
      if (cur === undefined) this.durableDirs.delete(p);
      else this.durableDirs.set(p, cur);
    }
  }

  async exists(path: string): Promise<boolean> {
    return this.dirs.has(path) || this.lookup(path) !== undefined;
  }

  /**
   * The file system as one process sees it: after a crash every call through an older view fails,
   * as a dead process can no longer touch the disk.
   */
  view(): FsLayer {
    const gen = this.generation;
    const check = (): void => {
      if (this.generation !== gen) throw new Error("EBADF: the process died in a crash");
    };
    const wrap =
      <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        check();
        return f(...a);
      };
    return {
      open: wrap((p: string, m: "r" | "r+" | "w") => this.open(p, m)),
      readdir: wrap((d: string) => this.readdir(d)),
      mkdirp: wrap((d: string) => this.mkdirp(d)),
      rename: wrap((a: string, b: string) => this.rename(a, b)),
      unlink: wrap((p: string) => this.unlink(p)),
      rmrf: wrap((p: string) => this.rmrf(p)),
      syncDir: wrap((d: string) => this.syncDir(d)),
      exists: wrap((p: string) => this.exists(p)),
    };
  }

  /**
   * A crash: what was not synced survives as `opts` says (see the module comment). `true` is
   * `{ data: "torn" }` and `false` is `{ data: "all" }`, both with unsynced directory
   * operations lost.
   */
  crash(rand: () => number, opts: boolean | CrashOptions): void {
    const o: CrashOptions = typeof opts === "boolean" ? { data: opts ? "torn" : "all" } : opts;
    const data = o.data ?? "all";
    const dirs = o.dirs ?? "lost";
    // Directories renamed or removed since their parent's last sync.
    if (dirs === "lost" || (dirs === "prefix" && rand() < 0.5)) {
      this.dirs = new Map(this.durableDirs);
    } else {
      this.durableDirs = new Map(this.dirs);
    }
    const inodes = new Set<Inode>();
    for (const d of new Set(this.dirs.values())) {
      const keep =
        dirs === "kept"
          ? d.ops.length
          : dirs === "lost"
            ? 0
            : Math.floor(rand() * (d.ops.length + 1));
      const entries = new Map(d.durable);
      for (const f of d.ops.slice(0, keep)) f(entries);
      d.entries = entries;
      d.durable = new Map(entries);
      d.ops = [];
      for (const ino of entries.values()) inodes.add(ino);
    }
    const chosen = new Map<number, boolean>();
    const sectorKept =
      typeof data === "object" && "sectors" in data
        ? data.sectors
        : (k: number): boolean => {
            let v = chosen.get(k);
            if (v === undefined) {
              v = rand() < 0.5;
              chosen.set(k, v);
            }
            return v;
          };
    for (const ino of inodes) this.settle(ino, data, rand, sectorKept);
    this.failWrites = false;
    this.failSyncs = false;
    this.generation++;
  }

  /** Decides what of one file's unsynced writes is on the disk after the crash. */
  private settle(
    ino: Inode,
    data: DataLoss,
    rand: () => number,
    sectorKept: (k: number) => boolean,
  ): void {
    const writes = ino.unsynced;
    ino.unsynced = [];
    if (data === "none") {
      ino.durable = ino.data.slice(0, ino.size);
      ino.durableSize = ino.size;
      return;
    }
    ino.data = ino.durable.slice();
    ino.size = ino.durableSize;
    const put = (pos: number, bytes: Uint8Array): void => {
      const end = pos + bytes.byteLength;
      if (end > ino.data.byteLength) {
        const b = new Uint8Array(end);
        b.set(ino.data.subarray(0, ino.size));
        ino.data = b;
      }
      ino.data.set(bytes, pos);
      ino.size = Math.max(ino.size, end);
    };
    if (data === "torn" || (typeof data === "object" && "prefix" in data)) {
      const w = writes[writes.length - 1];
      if (w !== undefined && w.pos <= ino.size) {
        const n =
          data === "torn"
            ? Math.floor(rand() * w.bytes.byteLength)
            : Math.min(data.prefix, w.bytes.byteLength);
        put(w.pos, w.bytes.subarray(0, n));
      }
    } else if (data === "sectors" || (typeof data === "object" && "sectors" in data)) {
      for (const w of writes) {
        const end = w.pos + w.bytes.byteLength;
        for (let k = Math.floor(w.pos / SECTOR); k * SECTOR < end; k++) {
          if (!sectorKept(k)) continue;
          const a = Math.max(w.pos, k * SECTOR);
          const b = Math.min(end, (k + 1) * SECTOR);
          // A sector past the end of the file lands only if the file reaches it.
          if (a > ino.size) continue;
          put(a, w.bytes.subarray(a - w.pos, b - w.pos));
        }
      }
    }
    // What survived is on the disk now.
    ino.durable = ino.data.slice(0, ino.size);
    ino.durableSize = ino.size;
  }
}
