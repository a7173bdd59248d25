/**
 * Every type a user of the package receives can be named: the types returned by the functions and
 * methods of every entry point in package.json's `exports` (and the fields of the interfaces among
 * them) are exported from that entry point or from the package root. Checked with the TypeScript
 * compiler over src/; test/package/install.test.ts runs the same check over the published .d.ts.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { entryPointsOf, unexportedReturnTypes } from "./public-types.js";

const ROOT = resolve(import.meta.dirname, "../..");
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("public types", () => {
  it("every type returned by the package's exported functions and methods is exported", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
      exports: Record<string, unknown>;
    };
    const entries = entryPointsOf(ROOT, pkg.exports, "src");
    assert.ok(entries.some((e) => e.subpath === "."));
    assert.ok(entries.some((e) => e.subpath === "./api"));
    assert.deepEqual(unexportedReturnTypes(entries, ROOT), []);
  });

  it("the check finds unexported types behind Promise, unions, methods and interface fields", () => {
    const dir = mkdtempSync(join(tmpdir(), "nexus-public-types-"));
    dirs.push(dir);
    mkdirSync(join(dir, "src", "sub"), { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(
      join(dir, "src", "impl.ts"),
      `export interface Shown { readonly n: number }
       export interface Hidden { readonly n: number }
       export type HiddenRole = "a" | "b";
       export interface Deep { readonly x: number }
       export interface ViaField { readonly deep: Deep }
       export interface Api {
         get(): Promise<Hidden | undefined>;
         role(): HiddenRole;
         nested(): { field: ViaField };
       }
       export function make(): Api { throw new Error(); }
       export function shown(): Shown[] { return []; }
       export class Sub { private secret(): Hidden { throw new Error(); } open(): Shown { throw new Error(); } }`,
    );
    writeFileSync(
      join(dir, "src", "index.ts"),
      `export { make, shown } from "./impl.js";\nexport type { Api, Shown } from "./impl.js";\n`,
    );
    writeFileSync(join(dir, "src", "sub", "index.ts"), `export { Sub } from "../impl.js";\n`);
    const problems = unexportedReturnTypes(
      [
        { subpath: ".", file: join(dir, "src", "index.ts") },
        { subpath: "./sub", file: join(dir, "src", "sub", "index.ts") },
      ],
      dir,
    );
    assert.deepEqual(problems, [
      ".: Api.get() gives Hidden, which is not exported",
      ".: Api.nested() gives ViaField, which is not exported",
      ".: Api.role() gives HiddenRole, which is not exported",
      ".: ViaField.deep gives Deep, which is not exported",
    ]);
  });
});
