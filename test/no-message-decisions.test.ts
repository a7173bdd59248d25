/**
 * "Errors by code, never by message" (src/api/DESIGN.md): no file in src decides anything by an
 * error's message text. Rewording a message must never change which status a client sees or
 * whether a request is retried. Reads every src/**\/*.ts (generated code aside) with the
 * TypeScript parser and fails on:
 *
 * - an error's text (`.message`, `.rawMessage`, `.sqlMessage`, `String(err)`, `err.toString()`)
 *   inside a call of test, match, matchAll, exec, search, includes, startsWith, endsWith,
 *   indexOf, lastIndexOf or localeCompare, as receiver or argument;
 * - an error's text compared with ==, ===, != or !== (other than with undefined, null, "" or a
 *   typeof, which check presence or type);
 * - an error's text as a switch's discriminant.
 *
 * Decide by `err.code` (NexusError, RaftError, StorageError, Node's system errors), by class
 * (`instanceof`), or by a structured detail (the gRPC ErrorInfo) instead.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import ts from "typescript";

const SRC = resolve("src");

/** Properties that hold an error's human text. */
const TEXT_PROPERTIES = new Set(["message", "rawMessage", "sqlMessage"]);
/** Names an error usually goes by, for `String(err)`. */
const ERROR_NAME = /^(e|ex|err|error|cause|reason|why|failure|\w*Err(or)?)$/;
/** Methods that inspect text. */
const TEXT_TESTS = new Set([
  "test",
  "match",
  "matchAll",
  "exec",
  "search",
  "includes",
  "startsWith",
  "endsWith",
  "indexOf",
  "lastIndexOf",
  "localeCompare",
]);
const EQUALITY = new Set([
  ts.SyntaxKind.EqualsEqualsToken,
  ts.SyntaxKind.EqualsEqualsEqualsToken,
  ts.SyntaxKind.ExclamationEqualsToken,
  ts.SyntaxKind.ExclamationEqualsEqualsToken,
]);

/** Whether a node is an error's text: err.message, e["message"], String(err), err.toString(). */
function isErrorText(n: ts.Node): boolean {
  if (ts.isPropertyAccessExpression(n)) return TEXT_PROPERTIES.has(n.name.text);
  if (ts.isElementAccessExpression(n)) {
    return (
      ts.isStringLiteralLike(n.argumentExpression) && TEXT_PROPERTIES.has(n.argumentExpression.text)
    );
  }
  if (ts.isCallExpression(n)) {
    const [arg] = n.arguments;
    if (ts.isIdentifier(n.expression) && n.expression.text === "String" && arg !== undefined) {
      const inner = skipWrappers(arg);
      return ts.isIdentifier(inner) && ERROR_NAME.test(inner.text);
    }
    if (ts.isPropertyAccessExpression(n.expression) && n.expression.name.text === "toString") {
      const inner = skipWrappers(n.expression.expression);
      return ts.isIdentifier(inner) && ERROR_NAME.test(inner.text);
    }
  }
  return false;
}

/** `(x as Error)`, `x!`, `(x)` -> x. */
function skipWrappers(n: ts.Expression): ts.Expression {
  for (;;) {
    if (ts.isParenthesizedExpression(n) || ts.isAsExpression(n) || ts.isNonNullExpression(n)) {
      n = n.expression;
    } else {
      return n;
    }
  }
}

/** Whether n or anything inside it is an error's text. */
function containsErrorText(n: ts.Node): boolean {
  if (isErrorText(n)) return true;
  return ts.forEachChild(n, (c) => (containsErrorText(c) ? true : undefined)) ?? false;
}

/** undefined, null, "" or a typeof: a comparison with one checks presence or type, not text. */
function isPresenceOrType(n: ts.Expression): boolean {
  const x = skipWrappers(n);
  return (
    x.kind === ts.SyntaxKind.NullKeyword ||
    (ts.isIdentifier(x) && x.text === "undefined") ||
    (ts.isStringLiteralLike(x) && x.text === "") ||
    ts.isTypeOfExpression(x)
  );
}

/** Every place in `text` that decides by an error's message, as "line: source". */
function messageDecisions(text: string, fileName = "fixture.ts"): string[] {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const report = (n: ts.Node): void => {
    const { line } = sf.getLineAndCharacterOfPosition(n.getStart(sf));
    found.push(`${line + 1}: ${n.getText(sf).replace(/\s+/g, " ").slice(0, 120)}`);
  };
  const visit = (n: ts.Node): void => {
    if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression)) {
      const method = n.expression.name.text;
      if (
        TEXT_TESTS.has(method) &&
        (containsErrorText(n.expression.expression) || n.arguments.some(containsErrorText))
      ) {
        report(n);
      }
    } else if (ts.isBinaryExpression(n) && EQUALITY.has(n.operatorToken.kind)) {
      const sides = [n.left, n.right];
      if (!sides.some(isPresenceOrType) && sides.some(containsErrorText)) report(n);
    } else if (ts.isSwitchStatement(n) && containsErrorText(n.expression)) {
      report(n.expression);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== "gen") sourceFiles(p, out);
    } else if (p.endsWith(".ts")) {
      out.push(p);
    }
  }
  return out;
}

describe("errors by code, never by message", () => {
  it("no file in src decides by an error's message text", () => {
    const files = sourceFiles(SRC);
    assert.ok(files.length > 50, `only ${files.length} files found under ${SRC}`);
    const found = files.flatMap((f) =>
      messageDecisions(readFileSync(f, "utf8"), f).map((d) => `${relative(".", f)}:${d}`),
    );
    assert.deepEqual(
      found,
      [],
      `decide by err.code, instanceof or a structured detail:\n${found.join("\n")}`,
    );
  });

  for (const c of [
    { name: "a regex on err.message", code: `if (/no leader/.test(err.message)) x();` },
    { name: "message.includes", code: `const nl = err.message.includes("no leader");` },
    {
      name: "a cast error's message.startsWith",
      code: `if ((err as Error).message.startsWith("NO_LEADER")) x();`,
    },
    {
      name: "a CODE: prefix parsed from rawMessage",
      code: `const m = /^([A-Z_]+): /.exec(e.rawMessage);`,
    },
    { name: "rawMessage.match", code: `const m = e.rawMessage.match(/^([A-Z_]+): /);` },
    { name: "a regex on String(err)", code: `if (/timeout/i.test(String(err))) x();` },
    { name: "String(error).endsWith", code: `const t = String(error).endsWith("closed");` },
    { name: "err.toString().includes", code: `const t = err.toString().includes("EPIPE");` },
    { name: "message compared with ===", code: `if (err.message === "stopped") x();` },
    { name: "message compared with !==", code: `if ("stopped" !== e.message) x();` },
    { name: "a prefix of the message compared", code: `if (e.message.split(":")[0] === "X") x();` },
    { name: "message as a switch discriminant", code: `switch (e.message) { case "x": break; }` },
    { name: "message.indexOf", code: `if (e.message.indexOf("dup") >= 0) x();` },
    { name: "mysql's sqlMessage.includes", code: `if (e.sqlMessage.includes("Duplicate")) x();` },
    { name: 'e["message"].includes', code: `if (e["message"].includes("x")) x();` },
    { name: "a message inside a list test", code: `if (KNOWN.includes(err.message)) x();` },
  ]) {
    it(`flags ${c.name}`, () => assert.equal(messageDecisions(c.code).length, 1, c.code));
  }

  for (const c of [
    { name: "the message in a log's fields", code: `log.warn("failed", { error: err.message });` },
    {
      name: "the message in a new error's text",
      code: 'throw new NexusError("X", `not proposed: ${err.message}`);',
    },
    { name: "a decision by err.code", code: `if (err.code === "ENOENT") x();` },
    { name: "a decision by isNexusError", code: `if (isNexusError(err, "NO_LEADER")) x();` },
    { name: "a regex on data", code: `if (/^\\d+$/.test(raw)) x();` },
    {
      name: "a regex on a row value",
      code: `const g = /\\bSTORED\\b/i.test(String(r["x"] ?? ""));`,
    },
    { name: "a presence check of the message", code: `if (err.message !== undefined) x();` },
    {
      name: "an empty message",
      code: `const why = e.rawMessage === "" ? "an error" : e.rawMessage;`,
    },
    { name: "a type check of the message", code: `if (typeof e.sqlMessage === "string") x();` },
    { name: "file names filtered by a regex", code: `names.filter((n) => SEGMENT_RE.test(n));` },
  ]) {
    it(`spares ${c.name}`, () => assert.deepEqual(messageDecisions(c.code), [], c.code));
  }
});
