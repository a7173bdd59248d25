/**
 * Turns a user's Lua snippet into the chunk the Redis wrapper script (lua-sandbox.ts) runs: the
 * snippet is parsed (luaparse, Lua 5.1, the dialect of Redis's Lua) and written out again from
 * its syntax tree, so that what Redis compiles is exactly what was checked here, whatever the
 * text held (comments, long strings, tricks meant to close the wrapper early). On the way:
 *
 * - every loop body (while, numeric and generic for, repeat) and every function body starts with
 *   a call of the step function `__nexus_step()`, which the wrapper owns and which counts down
 *   the apply step budget: the same snippet on the same data takes the same number of steps on
 *   every replica, so an endless loop or recursion ends with the same error everywhere;
 * - every global name `x` becomes `__nexus_G.x`, a field of the environment the wrapper gives the
 *   snippet (its own redis.call, a seeded math.random, copies of the libraries, no loadstring),
 *   so the snippet never sees Redis's own globals;
 * - names beginning with `__nexus` are refused: the snippet cannot reach or shadow the wrapper's;
 * - the result is one chunk, `local __nexus_G, __nexus_step = ... return (function(...) <snippet>
 *   end)()`, in printable ASCII (strings are written with decimal escapes), and each statement
 *   stays on its line so that Lua's error messages name the user's own line numbers.
 *
 * Deterministic: the same snippet gives the same chunk or the same refusal on every node.
 */
import luaparse from "luaparse";
import type {
  Chunk,
  Expression,
  FunctionDeclaration,
  Identifier,
  MemberExpression,
  Statement,
  TableConstructorExpression,
} from "luaparse";

/** Why a snippet is refused before it reaches Redis: the entry's error result. */
export class LuaRefusal extends Error {
  override readonly name = "LuaRefusal";
}

/** Names the snippet may not use: the wrapper's. */
const RESERVED = /^__nexus/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)$/;
/** Lua 5.1 refuses deeper nesting ("chunk has too many syntax levels"); so does this. */
const MAX_DEPTH = 200;

type Range = readonly [number, number];
const rangeOf = (n: { type: string }): Range => {
  const r = (n as { range?: [number, number] }).range;
  if (r === undefined) throw new Error(`no range on ${n.type}`);
  return r;
};
const lineOf = (n: { loc?: { start: { line: number } } | undefined }): number =>
  n.loc?.start.line ?? 0;

/** A Lua string literal of the bytes in `s` (one char per byte): printable ASCII, else \ddd. */
function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c) out += s[i];
    else out += "\\" + String(c).padStart(3, "0");
  }
  return out + '"';
}

const MULTI = new Set([
  "CallExpression",
  "StringCallExpression",
  "TableCallExpression",
  "VarargLiteral",
]);

class Writer {
  /** The output line the text written so far ends on. */
  private line = 1;
  private readonly scopes: Set<string>[] = [];
  private depth = 0;

  constructor(private readonly src: string) {}

  /** Newlines up to the line `node` starts on, so that Lua's error lines stay the user's. */
  private at(node: { loc?: { start: { line: number } } | undefined }): string {
    const want = lineOf(node);
    if (want <= this.line) return "";
    const pad = "\n".repeat(want - this.line);
    this.line = want;
    return pad;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) {
      throw new LuaRefusal(`the script is nested more than ${MAX_DEPTH} levels deep`);
    }
  }

  private leave(): void {
    this.depth--;
  }

  private isLocal(name: string): boolean {
    for (let i = this.scopes.length - 1; i >= 0; i--) if (this.scopes[i]!.has(name)) return true;
    return false;
  }

  private declare(id: Identifier): string {
    const name = this.checkName(id.name);
    this.scopes[this.scopes.length - 1]!.add(name);
    return this.at(id) + name;
  }

  private checkName(name: string): string {
    if (!NAME.test(name)) throw new LuaRefusal(`'${name}' is not a Lua name`);
    if (RESERVED.test(name)) {
      throw new LuaRefusal(`names beginning with __nexus are reserved for Nexus ('${name}')`);
    }
    return name;
  }

  /**
   * How many '(' stand in the source between `from` and `to`, comments skipped: the parentheses
   * around an expression, which luaparse does not keep. They matter around a call or `...` at the
   * end of a list (they keep its first value only).
   */
  private parensBetween(from: number, to: number): number {
    const s = this.src;
    let n = 0;
    let i = from;
    while (i < to) {
      if (s.startsWith("--", i)) {
        const long = /^--\[(=*)\[/.exec(s.slice(i, i + 200));
        if (long !== null) {
          const end = s.indexOf(`]${long[1]}]`, i + long[0].length);
          i = end < 0 ? to : end + long[1]!.length + 2;
        } else {
          const end = s.indexOf("\n", i);
          i = end < 0 ? to : end + 1;
        }
        continue;
      }
      if (s[i] === "(") n++;
      i++;
    }
    return n;
  }

  /** Expression lists: the last one keeps its parentheses if it had any and can be multiple. */
  private list(exprs: readonly Expression[], start: number, ownParens: number): string {
    let out = "";
    let from = start;
    for (const [i, e] of exprs.entries()) {
      if (i > 0) out += ", ";
      const text = this.expr(e);
      const last = i === exprs.length - 1;
      const own = i === 0 ? ownParens : 0;
      out +=
        last && MULTI.has(e.type) && this.parensBetween(from, rangeOf(e)[0]) > own
          ? `(${text})`
          : text;
      from = rangeOf(e)[1];
    }
    return out;
  }

  block(body: readonly Statement[], declare?: () => string): string {
    this.scopes.push(new Set());
    let out = declare?.() ?? "";
    for (const s of body) out += " " + this.stmt(s);
    this.scopes.pop();
    return out;
  }

  private funcBody(f: FunctionDeclaration, self: boolean): string {
    this.enter();
    this.scopes.push(new Set());
    if (self) this.scopes[this.scopes.length - 1]!.add("self");
    const params = f.parameters
      .map((p) => (p.type === "VarargLiteral" ? "..." : this.declare(p)))
      .join(", ");
    let out = `(${params}) __nexus_step()`;
    for (const s of f.body) out += " " + this.stmt(s);
    this.scopes.pop();
    this.leave();
    return out + " end";
  }

  private stmt(s: Statement): string {
    this.enter();
    try {
      return this.at(s) + this.stmtText(s);
    } finally {
      this.leave();
    }
  }

  private stmtText(s: Statement): string {
    switch (s.type) {
      case "LocalStatement": {
        const names = s.variables.map((v) => this.at(v) + this.checkName(v.name));
        let init = "";
        if (s.init.length > 0) {
          init = " = " + this.list(s.init, rangeOf(s.variables[s.variables.length - 1]!)[1], 0);
        }
        for (const v of s.variables) this.scopes[this.scopes.length - 1]!.add(v.name);
        return `local ${names.join(", ")}${init}`;
      }
      case "AssignmentStatement": {
        const targets = s.variables.map((v) => this.expr(v)).join(", ");
        const from = rangeOf(s.variables[s.variables.length - 1]!)[1];
        return `${targets} = ${this.list(s.init, from, 0)}`;
      }
      case "CallStatement":
        return this.expr(s.expression);
      case "FunctionDeclaration": {
        const id = s.identifier;
        if (s.isLocal) {
          if (id === null || id.type !== "Identifier")
            throw new LuaRefusal("a local function needs a name");
          return `local function ${this.declare(id)}${this.funcBody(s, false)}`;
        }
        if (id === null) return `function${this.funcBody(s, false)}`;
        const name = id.type === "Identifier" ? this.ref(id) : this.member(id);
        const method = id.type === "MemberExpression" && id.indexer === ":";
        return `function ${name}${this.funcBody(s, method)}`;
      }
      case "ReturnStatement":
        return s.arguments.length === 0
          ? "return"
          : `return ${this.list(s.arguments, rangeOf(s)[0] + "return".length, 0)}`;
      case "IfStatement": {
        let out = "";
        for (const c of s.clauses) {
          if (c.type === "IfClause") out += `if ${this.expr(c.condition)} then`;
          else if (c.type === "ElseifClause")
            out += ` ${this.at(c)}elseif ${this.expr(c.condition)} then`;
          else out += ` ${this.at(c)}else`;
          out += this.block(c.body);
        }
        return out + " end";
      }
      case "WhileStatement":
        return `while ${this.expr(s.condition)} do __nexus_step()${this.block(s.body)} end`;
      case "DoStatement":
        return `do${this.block(s.body)} end`;
      case "RepeatStatement": {
        // The condition sees the body's locals.
        this.scopes.push(new Set());
        let out = "repeat __nexus_step()";
        for (const b of s.body) out += " " + this.stmt(b);
        out += ` until ${this.expr(s.condition)}`;
        this.scopes.pop();
        return out;
      }
      case "ForNumericStatement": {
        const range = [this.expr(s.start), this.expr(s.end)];
        if (s.step !== null) range.push(this.expr(s.step));
        return `for ${this.block(s.body, () => this.declare(s.variable) + " = " + range.join(", ") + " do __nexus_step()")} end`;
      }
      case "ForGenericStatement": {
        const from = rangeOf(s.variables[s.variables.length - 1]!)[1];
        const iterators = this.list(s.iterators, from, 0);
        return `for ${this.block(
          s.body,
          () =>
            s.variables.map((v) => this.declare(v)).join(", ") +
            ` in ${iterators} do __nexus_step()`,
        )} end`;
      }
      case "BreakStatement":
        return "break";
      case "GotoStatement":
      case "LabelStatement":
        throw new LuaRefusal("goto and labels are not Lua 5.1");
    }
  }

  /** A name as an expression: a local, or a field of the snippet's environment. */
  private ref(id: Identifier): string {
    const name = this.checkName(id.name);
    return this.at(id) + (this.isLocal(name) ? name : `__nexus_G.${name}`);
  }

  private member(m: MemberExpression): string {
    if (!NAME.test(m.identifier.name))
      throw new LuaRefusal(`'${m.identifier.name}' is not a Lua name`);
    return `${this.prefix(m.base)}${m.indexer}${m.identifier.name}`;
  }

  /** An expression used as the base of an index or a call: in parentheses unless a name or call. */
  private prefix(e: Expression): string {
    const text = this.expr(e);
    switch (e.type) {
      case "Identifier":
      case "MemberExpression":
      case "IndexExpression":
      case "CallExpression":
      case "StringCallExpression":
      case "TableCallExpression":
        return text;
      default:
        return `(${text})`;
    }
  }

  private table(t: TableConstructorExpression): string {
    const parts: string[] = [];
    let from = rangeOf(t)[0] + 1;
    for (const [i, f] of t.fields.entries()) {
      if (f.type === "TableKey") parts.push(`[${this.expr(f.key)}] = ${this.expr(f.value)}`);
      else if (f.type === "TableKeyString") {
        parts.push(`${this.at(f)}${this.checkField(f.key.name)} = ${this.expr(f.value)}`);
      } else {
        const last = i === t.fields.length - 1;
        const text = this.expr(f.value);
        parts.push(
          last && MULTI.has(f.value.type) && this.parensBetween(from, rangeOf(f.value)[0]) > 0
            ? `(${text})`
            : text,
        );
      }
      from = rangeOf(f)[1];
    }
    return `{${parts.join(", ")}}`;
  }

  private checkField(name: string): string {
    if (!NAME.test(name)) throw new LuaRefusal(`'${name}' is not a Lua name`);
    return name;
  }

  expr(e: Expression): string {
    this.enter();
    try {
      return this.at(e) + this.exprText(e);
    } finally {
      this.leave();
    }
  }

  private exprText(e: Expression): string {
    switch (e.type) {
      case "Identifier":
        return this.ref(e);
      case "StringLiteral":
        return quote(e.value);
      case "NumericLiteral":
        if (!NUMBER.test(e.raw)) throw new LuaRefusal(`'${e.raw}' is not a Lua 5.1 number`);
        return e.raw;
      case "BooleanLiteral":
        return e.value ? "true" : "false";
      case "NilLiteral":
        return "nil";
      case "VarargLiteral":
        return "...";
      case "FunctionDeclaration":
        return `function${this.funcBody(e, false)}`;
      case "TableConstructorExpression":
        return this.table(e);
      case "BinaryExpression":
      case "LogicalExpression":
        return `(${this.expr(e.left)} ${e.operator} ${this.expr(e.right)})`;
      case "UnaryExpression":
        if (e.operator === "~") throw new LuaRefusal("the ~ operator is not Lua 5.1");
        return `(${e.operator} (${this.expr(e.argument)}))`;
      case "MemberExpression":
        return this.member(e);
      case "IndexExpression":
        return `${this.prefix(e.base)}[${this.expr(e.index)}]`;
      case "CallExpression": {
        const base = this.prefix(e.base);
        const own = 1;
        return `${base}(${this.list(e.arguments, rangeOf(e.base)[1], own)})`;
      }
      case "TableCallExpression":
        return `${this.prefix(e.base)}${this.expr(e.arguments)}`;
      case "StringCallExpression":
        return `${this.prefix(e.base)}(${this.expr(e.argument)})`;
    }
  }
}

/**
 * The chunk the wrapper compiles for `code` (the snippet's bytes), or a LuaRefusal saying why
 * the snippet cannot run: it does not parse as Lua 5.1, it is nested too deeply, or it uses a
 * reserved name.
 */
export function instrumentLua(code: Uint8Array): string {
  // One char per byte: Lua strings are bytes, and luaparse gives them back as such.
  const src = Buffer.from(code.buffer, code.byteOffset, code.byteLength).toString("latin1");
  let chunk: Chunk;
  try {
    chunk = luaparse.parse(src, {
      luaVersion: "5.1",
      encodingMode: "pseudo-latin1",
      locations: true,
      ranges: true,
      comments: false,
      scope: false,
    });
  } catch (err) {
    if (err instanceof RangeError) {
      throw new LuaRefusal(`the script is nested more than ${MAX_DEPTH} levels deep`);
    }
    throw new LuaRefusal(`Error compiling script: ${(err as Error).message}`);
  }
  const w = new Writer(src);
  let body: string;
  try {
    body = w.block(chunk.body);
  } catch (err) {
    if (err instanceof RangeError) {
      throw new LuaRefusal(`the script is nested more than ${MAX_DEPTH} levels deep`);
    }
    throw err;
  }
  return `local __nexus_G, __nexus_step = ... return (function(...)${body} end)()`;
}
