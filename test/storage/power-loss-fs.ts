/**
 * An in-memory FsLayer that models what survives power loss: a file's durable content is what it
 * held at its last fdatasync, and a directory's durable entries (creations, renames, removals)
 * are what it held at its last directory fsync. crash() throws away everything else (optionally
 * keeping a torn prefix of the newest unsynced write). Writes and syncs can be made to fail.
 */
import { dirname, basename } from "node:path";
import type { FsFile, FsLayer } from "../../src/storage/fs-layer.js";

interface Inode {
  data: Uint8Array;
  size: number;
  durable: Uint8Array;
  durableSize: number;
  /** The newest unsynced write, for torn-write crashes. */
  lastWrite: { pos: number; bytes: Uint8Array } | undefined;
}

interface Dir {
  entries: Map<string, Inode>;
  durable: Map<string, Inode>;
}

export class PowerLossFs implements FsLayer {
  private dirs = new Map<string, Dir>();
  /** Bumped at each crash: handles opened before it fail, like a dead process's descriptors. */
  generation = 0;
  failWrites = false;
  failSyncs = false;

  private dir(path: string, create = false): Dir {
    let d = this.dirs.get(path);
    if (d === undefined) {
      if (!create)
        throw Object.assign(new Error(`ENOENT: no such directory ${path}`), { code: "ENOENT" });
      d = { entries: new Map(), durable: new Map() };
      this.dirs.set(path, d);
    }
    return d;
  }

  private lookup(path: string): Inode | undefined {
    return this.dirs.get(dirname(path))?.entries.get(basename(path));
  }

  async open(path: string, mode: "r" | "r+" | "w"): Promise<FsFile> {
    const d = this.dir(dirname(path));
    let ino = d.entries.get(basename(path));
    if (ino === undefined || mode === "w") {
      if (mode !== "w") throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      if (ino === undefined) {
        ino = {
          data: new Uint8Array(0),
          size: 0,
          durable: new Uint8Array(0),
          durableSize: 0,
          lastWrite: undefined,
        };
        d.entries.set(basename(path), ino);
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
        node.lastWrite = { pos: position, bytes: buf.slice() };
      },
      async datasync() {
        alive();
        if (state().failSyncs) throw new Error("EIO: injected sync failure");
        node.durable = node.data.slice(0, node.size);
        node.durableSize = node.size;
        node.lastWrite = undefined;
      },
      async read(buf, position) {
        const n = Math.max(0, Math.min(buf.byteLength, node.size - position));
        buf.set(node.data.subarray(position, position + n));
        return n;
      },
      readSync(buf, position) {
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
    // Directories themselves are durable once created (the parent's entry is modeled by rename).
    this.dir(dir, true);
  }

  async rename(from: string, to: string): Promise<void> {
    if (this.dirs.has(from)) {
      // Directory rename (WAL creation): move the whole directory.
      const d = this.dirs.get(from)!;
      this.dirs.delete(from);
      this.dirs.set(to, d);
      return;
    }
    const ino = this.lookup(from);
    if (ino === undefined) throw Object.assign(new Error(`ENOENT: ${from}`), { code: "ENOENT" });
    this.dir(dirname(from)).entries.delete(basename(from));
    this.dir(dirname(to)).entries.set(basename(to), ino);
  }

  async unlink(path: string): Promise<void> {
    this.dirs.get(dirname(path))?.entries.delete(basename(path));
  }

  async rmrf(path: string): Promise<void> {
    this.dirs.delete(path);
    this.dirs.get(dirname(path))?.entries.delete(basename(path));
  }

  async syncDir(dir: string): Promise<void> {
    if (this.failSyncs) throw new Error("EIO: injected sync failure");
    const d = this.dirs.get(dir);
    if (d !== undefined) d.durable = new Map(d.entries);
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
   * Power loss: every file reverts to its last synced content and every directory to its last
   * synced entries. With `torn`, a random prefix of each file's newest unsynced write survives.
   */
  crash(rand: () => number, torn: boolean): void {
    for (const d of this.dirs.values()) {
      d.entries = new Map(d.durable);
      for (const ino of d.entries.values()) {
        const keep = ino.lastWrite;
        ino.data = ino.durable.slice();
        ino.size = ino.durableSize;
        if (torn && keep !== undefined && keep.pos <= ino.size) {
          const n = Math.floor(rand() * keep.bytes.byteLength);
          const end = keep.pos + n;
          if (end > ino.data.byteLength) {
            const b = new Uint8Array(end);
            b.set(ino.data.subarray(0, ino.size));
            ino.data = b;
          }
          ino.data.set(keep.bytes.subarray(0, n), keep.pos);
          ino.size = Math.max(ino.size, end);
          // What survived the power loss is on the disk now.
          ino.durable = ino.data.slice(0, ino.size);
          ino.durableSize = ino.size;
        }
        ino.lastWrite = undefined;
      }
    }
    this.failWrites = false;
    this.failSyncs = false;
    this.generation++;
  }
}
