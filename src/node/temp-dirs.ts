/**
 * Whether a folder lies in a temporary folder (os.tmpdir(), /tmp, /var/tmp), which a reboot or a
 * temp cleaner may empty: a node whose WAL lives there would lose its log. The library and the
 * programs warn about such data folders at startup.
 */
import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";

/** The temporary folders: os.tmpdir(), /tmp and /var/tmp, also as their real paths. */
export function tempRoots(): string[] {
  const roots = new Set([tmpdir(), "/tmp", "/var/tmp"].map((p) => resolve(p)));
  for (const r of [...roots]) {
    try {
      roots.add(realpathSync(r));
    } catch {
      // absent on this system
    }
  }
  return [...roots];
}

/** Whether `path` is inside a temporary folder (its nearest existing ancestor's real path too). */
export function underTempDir(path: string, roots: readonly string[] = tempRoots()): boolean {
  const candidates = [resolve(path)];
  let p = resolve(path);
  for (;;) {
    try {
      candidates.push(join(realpathSync(p), resolve(path).slice(p.length)));
      break;
    } catch {
      const up = dirname(p);
      if (up === p) break;
      p = up;
    }
  }
  return candidates.some((c) =>
    roots.some((r) => c === r || c.startsWith(r.endsWith(sep) ? r : r + sep)),
  );
}

/** The labelled folders of `paths` that lie in a temporary folder. */
export function tempFolders(paths: Readonly<Record<string, string>>): [string, string][] {
  const roots = tempRoots();
  return Object.entries(paths).filter(([, p]) => underTempDir(p, roots));
}
