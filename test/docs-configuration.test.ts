/**
 * docs/configuration.md lists every flag of every program. Its flag tables are generated from the
 * programs' real `--help` output, between `<!-- flags:NAME -->` and `<!-- /flags -->` markers:
 * this test runs every program's `--help`, renders the tables and fails when the page differs (a
 * flag added, removed, renamed or redescribed without the page following). Regenerate with
 * `REWRITE=1 node --import tsx --test test/docs-configuration.test.ts`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { format, resolveConfig } from "prettier";
import { EXIT } from "../src/cli/exit-codes.js";

const run = promisify(execFile);
const PAGE = "docs/configuration.md";

/** One flag as `--help` prints it. */
interface Flag {
  readonly names: readonly string[];
  /** `<int>`, `<string>`, or "" for a switch. */
  readonly value: string;
  readonly defaultValue: string;
  readonly meaning: string;
  /** `[-store sqlite]`: the store a `nexus serve` flag belongs to, "" otherwise. */
  readonly store: string;
}

/** The flags of one `--help` text: `  -name[, -alias] [<type>]` lines, each with its description. */
export function parseHelp(text: string): Flag[] {
  const flags: Flag[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const head = /^ {2}(-[\w-]+(?:, -[\w-]+)*)(?: (<\w+>))?$/.exec(lines[i]!);
    if (head === null) continue;
    let meaning = "";
    while (i + 1 < lines.length && lines[i + 1]!.startsWith("      ")) {
      meaning += (meaning === "" ? "" : " ") + lines[++i]!.trim();
    }
    let defaultValue = "";
    const def = / \(default ([^()]*)\)$/.exec(meaning);
    if (def !== null) {
      defaultValue = def[1]!;
      meaning = meaning.slice(0, def.index);
    }
    let store = "";
    const tag = / \[-store (\w+)\]$/.exec(meaning);
    if (tag !== null) {
      store = tag[1]!;
      meaning = meaning.slice(0, tag.index);
    }
    if (meaning.endsWith(" (required)")) {
      defaultValue = "required";
      meaning = meaning.slice(0, -" (required)".length);
    }
    flags.push({
      names: head[1]!.split(", "),
      value: head[2] ?? "",
      defaultValue,
      meaning,
      store,
    });
  }
  return flags;
}

/** Text as a table cell: pipes, angle brackets and asterisks shown as they are, not as markup. */
function cell(s: string): string {
  return s.replace(/[|<>*]/g, (c) => `\\${c}`);
}

function table(flags: readonly Flag[]): string {
  const rows = flags.map((f) => {
    const names = f.names.map((n) => `\`${n}\``).join(", ");
    const value = f.value === "" ? "switch" : `\`${f.value}\``;
    const def =
      f.defaultValue === ""
        ? ""
        : f.defaultValue === "required"
          ? "required"
          : `\`${f.defaultValue}\``;
    return `| ${names} | ${value} | ${def} | ${cell(f.meaning)} |`;
  });
  return ["| flag | value | default | meaning |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

async function help(args: readonly string[]): Promise<string> {
  const [prog, ...rest] = args;
  const { stdout } = await run(process.execPath, [`bin/${prog!}`, ...rest, "--help"], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return stdout;
}

const key = (f: Flag): string => f.names[0]!;

/** The generated tables, by marker name, from every program's `--help`. */
async function generate(): Promise<{ tables: Map<string, string>; nodeFlags: Flag[] }> {
  const [sqlite, redis, mysql, serve, repl, status, localCluster] = await Promise.all(
    [
      ["sqlite_repl"],
      ["redis_repl"],
      ["mysql_repl"],
      ["nexus", "serve"],
      ["repl"],
      ["nexus", "status"],
      ["nexus", "local-cluster"],
    ].map(async (a) => parseHelp(await help(a))),
  );
  for (const [name, flags] of [
    ["sqlite_repl", sqlite],
    ["redis_repl", redis],
    ["mysql_repl", mysql],
    ["nexus serve", serve],
    ["repl", repl],
  ] as const) {
    assert.ok(flags!.length > 0, `${name} --help lists no flags: has its format changed?`);
  }
  const inAll = (f: Flag): boolean =>
    [redis!, mysql!, serve!].every((p) => p.some((g) => key(g) === key(f)));
  const common = sqlite!.filter(inAll);
  const isCommon = (f: Flag): boolean => common.some((c) => key(c) === key(f));
  const own = (flags: readonly Flag[]): Flag[] => flags.filter((f) => !isCommon(f));

  // Every flag `nexus serve` takes for a store is the flag of that store's program.
  const byStore: Record<string, readonly Flag[]> = {
    sqlite: sqlite!,
    redis: redis!,
    mysql: mysql!,
  };
  for (const f of serve!) {
    if (f.store === "") continue;
    const program = byStore[f.store];
    assert.ok(
      program !== undefined,
      `nexus serve: ${key(f)} belongs to an unknown store ${f.store}`,
    );
    assert.ok(
      program.some((g) => key(g) === key(f)),
      `nexus serve takes ${key(f)} for -store ${f.store}, which ${f.store}_repl does not list`,
    );
  }
  const tables = new Map([
    ["node", table(common)],
    ["sqlite", table(own(sqlite!))],
    ["redis", table(own(redis!))],
    ["mysql", table(own(mysql!))],
    ["serve", table(own(serve!).filter((f) => f.store === ""))],
    ["repl", table(repl!)],
    ["status", table(status!)],
    ["local-cluster", table(localCluster!)],
  ]);
  return { tables, nodeFlags: common };
}

const MARKER = /(<!-- flags:([\w-]+) -->)([\s\S]*?)(<!-- \/flags -->)/g;

describe("docs/configuration.md", () => {
  it("lists every flag of every program as its --help prints it", async () => {
    const { tables, nodeFlags } = await generate();
    const page = readFileSync(PAGE, "utf8");
    const found = new Set<string>();
    const generated = page.replace(
      MARKER,
      (_all, open: string, name: string, _body, close: string) => {
        found.add(name);
        const t = tables.get(name);
        assert.ok(t !== undefined, `${PAGE} has a table "${name}" no program prints`);
        return `${open}\n\n${t}\n\n${close}`;
      },
    );
    for (const name of tables.keys()) {
      assert.ok(found.has(name), `${PAGE} lacks the table <!-- flags:${name} -->`);
    }
    // As `npm run format` leaves it (padded table columns).
    const want = await format(generated, { ...(await resolveConfig(PAGE)), filepath: PAGE });
    // Every node flag says which library option it becomes (-version aside).
    const mapping = page.slice(page.indexOf("## Flags and library options"));
    const unmapped = nodeFlags
      .map(key)
      .filter((k) => k !== "-version" && !mapping.includes(`\`${k}\``));
    assert.deepEqual(unmapped, [], `node flags missing from ${PAGE}#flags-and-library-options`);
    if (process.env["REWRITE"] === "1") writeFileSync(PAGE, want);
    else
      assert.equal(
        page,
        want,
        `${PAGE} differs from the programs' --help: a flag is missing or changed. ` +
          "Regenerate: REWRITE=1 node --import tsx --test test/docs-configuration.test.ts",
      );
  });

  it("the exit statuses table has every status of src/cli/exit-codes.ts", () => {
    const page = readFileSync(PAGE, "utf8");
    const section = page.slice(
      page.indexOf("## Exit statuses"),
      page.indexOf("## Flags and library"),
    );
    const listed = [...section.matchAll(/^\| (\d+) +\|/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      listed,
      [...new Set(Object.values(EXIT))].sort((a, b) => a - b),
    );
  });

  it("the parser reads a help entry: names, value, default, store, required", () => {
    const flags = parseHelp(
      [
        "flags:",
        "  -nexusLeaseBasedReads, -nexus-lease-based-reads",
        "      serve reads from the lease (default false)",
        "  -grpcPort <int>",
        "      port (required)",
        "  -redisHost <string>",
        "      Redis host [-store redis] (default 127.0.0.1)",
      ].join("\n"),
    );
    assert.deepEqual(flags, [
      {
        names: ["-nexusLeaseBasedReads", "-nexus-lease-based-reads"],
        value: "",
        defaultValue: "false",
        meaning: "serve reads from the lease",
        store: "",
      },
      {
        names: ["-grpcPort"],
        value: "<int>",
        defaultValue: "required",
        meaning: "port",
        store: "",
      },
      {
        names: ["-redisHost"],
        value: "<string>",
        defaultValue: "127.0.0.1",
        meaning: "Redis host",
        store: "redis",
      },
    ]);
  });
});
