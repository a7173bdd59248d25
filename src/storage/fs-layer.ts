/**
 * The file-system calls the storage room makes, behind one small interface so that tests can
 * inject write and sync failures and simulate power loss. `createNodeFs()` is the real one.
 */
import { readSync } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";

/** An open file. Positions and lengths are in bytes. */
export interface FsFile {
  /**
   * The operating system's descriptor, when the file is a real one (node:fs). The WAL's writer
   * thread writes and syncs through it (wal-writer.ts); a layer without it (fault injection,
   * power-loss simulation) makes the WAL write through this interface instead. It is not
   * enumerable on node:fs files, so a wrapper built by spreading one (`{ ...f, write }`, to
   * inject faults) has none and keeps every write going through its own methods.
   */
  readonly fd?: number;
  /** Writes all of buf at position. */
  write(buf: Uint8Array, position: number): Promise<void>;
  /** fdatasync: the data written so far survives power loss once this resolves. */
  datasync(): Promise<void>;
  /** Reads up to buf.length bytes at position; returns the count read. */
  read(buf: Uint8Array, position: number): Promise<number>;
  /** Synchronous read, for the raft log view's rare reads of old entries. */
  readSync(buf: Uint8Array, position: number): number;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FsLayer {
  /** Opens a file: "r" read-only, "r+" read-write (must exist), "w" create or truncate. */
  open(path: string, mode: "r" | "r+" | "w"): Promise<FsFile>;
  readdir(dir: string): Promise<string[]>;
  mkdirp(dir: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Removes a directory tree. */
  rmrf(path: string): Promise<void>;
  /** fsync of a directory: creations, renames and removals in it survive power loss. */
  syncDir(dir: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

/** The real file system through node:fs. */
export function createNodeFs(): FsLayer {
  return {
    async open(path, mode) {
      // "w" creates or truncates, readable too (the WAL reads back its current segment).
      const fh = await open(path, mode === "w" ? "w+" : mode);
      const file: FsFile = {
        async write(buf, position) {
          let off = 0;
          while (off < buf.byteLength) {
            const { bytesWritten } = await fh.write(buf, off, buf.byteLength - off, position + off);
            if (bytesWritten <= 0) throw new Error(`short write to ${path}`);
            off += bytesWritten;
          }
        },
        datasync: () => fh.datasync(),
        async read(buf, position) {
          const { bytesRead } = await fh.read(buf, 0, buf.byteLength, position);
          return bytesRead;
        },
        readSync(buf, position) {
          // The handle's own descriptor: the file may have been renamed since it was opened.
          return readSync(fh.fd, buf, 0, buf.byteLength, position);
        },
        truncate: (length) => fh.truncate(length),
        async size() {
          return (await fh.stat()).size;
        },
        close: () => fh.close(),
      };
      Object.defineProperty(file, "fd", { value: fh.fd, enumerable: false });
      return file;
    },
    readdir: (dir) => readdir(dir),
    async mkdirp(dir) {
      await mkdir(dir, { recursive: true });
    },
    rename: (from, to) => rename(from, to),
    unlink: (path) => rm(path, { force: true }),
    rmrf: (path) => rm(path, { recursive: true, force: true }),
    async syncDir(dir) {
      const fh = await open(dir, "r");
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    },
    async exists(path) {
      try {
        await stat(path);
        return true;
      } catch {
        return false;
      }
    },
  };
}
