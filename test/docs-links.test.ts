/**
 * The docs hold together: every relative link in README.md and docs/*.md reaches a file that
 * exists (and, with `#anchor`, a heading of that page, by GitHub's anchor rules), so does every
 * `docs/page.md#anchor` named in a comment of src or bin, and every room's DESIGN.md names every .ts
 * file of its room (generated `gen/` folders excepted).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/** GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to dashes. */
export function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors of a Markdown page's headings (repeats get -1, -2, ... as on GitHub). */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const h = fenced ? null : /^#{1,6} (.+)$/.exec(line);
    if (h === null) continue;
    const base = anchorOf(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The link targets of a Markdown page, outside code blocks and code spans. */
export function linksOf(markdown: string): string[] {
  const text = markdown.replace(/^```[\s\S]*?^```$/gm, "").replace(/`[^`\n]*`/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
}

function pages(): string[] {
  return [
    "README.md",
    ...readdirSync("docs")
      .filter((f) => f.endsWith(".md"))
      .map((f) => join("docs", f)),
  ];
}

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "gen") walk(path, out);
    } else out.push(path);
  }
  return out;
}

describe("docs links", () => {
  for (const page of pages()) {
    it(`every relative link of ${page} resolves, with its anchor`, () => {
      const broken: string[] = [];
      for (const link of linksOf(readFileSync(page, "utf8"))) {
        if (/^[a-z]+:/.test(link)) continue; // https:, mailto:
        const [path, anchor] = link.split("#", 2) as [string, string | undefined];
        const target = path === "" ? page : join(dirname(page), path);
        if (!existsSync(target)) {
          broken.push(`${link}: no file ${target}`);
          continue;
        }
        if (anchor === undefined) continue;
        if (!target.endsWith(".md")) {
          broken.push(`${link}: an anchor into a file that is not Markdown`);
        } else if (!anchorsOf(readFileSync(target, "utf8")).has(anchor)) {
          broken.push(`${link}: ${target} has no heading #${anchor}`);
        }
      }
      assert.deepEqual(broken, [], `broken links in ${page}`);
    });
  }

  it("every docs/ page named in src and the DESIGN.md files exists, with its anchor", () => {
    const sources = [...walk("src", []), ...walk("bin", [])].filter((f) =>
      /\.(ts|mjs|md)$/.test(f),
    );
    const broken: string[] = [];
    for (const file of sources) {
      for (const [ref, page, anchor] of readFileSync(file, "utf8").matchAll(
        /\b(docs\/[\w-]+\.md)(?:#([\w-]+))?/g,
      )) {
        if (!existsSync(page!)) broken.push(`${file}: ${ref} (no such page)`);
        else if (anchor !== undefined && !anchorsOf(readFileSync(page!, "utf8")).has(anchor))
          broken.push(`${file}: ${ref} (no such heading)`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it("the anchor rules match GitHub's on a few headings", () => {
    assert.equal(anchorOf("The original's walkthroughs"), "the-originals-walkthroughs");
    assert.equal(anchorOf("SQLite: `sqlite_repl`"), "sqlite-sqlite_repl");
    assert.equal(anchorOf("`npm test`"), "npm-test");
    assert.deepEqual([...anchorsOf("# A\n## A\n```\n# not a heading\n```\n")], ["a", "a-1"]);
  });
});

describe("DESIGN.md files", () => {
  // Every file under src/ belongs to the room of the nearest folder above it with a DESIGN.md;
  // the entry files directly in src/ are described by docs/packaging.md (the package's exports).
  const files = walk("src", []).filter((f) => f.endsWith(".ts"));
  const rooms = new Map<string, string[]>();
  const homeless: string[] = [];
  for (const file of files) {
    let dir = dirname(file);
    while (dir !== "src" && !existsSync(join(dir, "DESIGN.md"))) dir = dirname(dir);
    if (dir === "src" && dirname(file) !== "src") homeless.push(file);
    const room = dir === "src" ? "docs/packaging.md" : join(dir, "DESIGN.md");
    rooms.set(room, [...(rooms.get(room) ?? []), file]);
  }

  it("every folder of src/ is a room with a DESIGN.md", () => {
    const folders = readdirSync("src").filter((f) => statSync(join("src", f)).isDirectory());
    assert.deepEqual(
      folders.filter((f) => !existsSync(join("src", f, "DESIGN.md"))),
      [],
    );
    assert.deepEqual(homeless, [], "files in no room with a DESIGN.md");
  });

  for (const [doc, roomFiles] of rooms) {
    it(`${doc} names every .ts file of its room`, () => {
      const text = readFileSync(doc, "utf8");
      const room = doc === "docs/packaging.md" ? "src" : dirname(doc);
      // A file is named by its name (`raft-log.ts`), or, in a sub-folder, by the folder (`quorum/`).
      const missing = roomFiles.filter((f) => {
        const rel = relative(room, f);
        const sub = dirname(rel);
        const name = rel.split("/").at(-1)!;
        return !text.includes(name) && !(sub !== "." && text.includes(`${sub}/`));
      });
      assert.deepEqual(missing, [], `${doc} does not name these files`);
    });
  }
});
