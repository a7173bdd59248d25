/**
 * What kind of SQL statement a text is, read from its first tokens the way SQLite reads them:
 * whitespace and comments (`-- ...`, `/* ... *\/`) skipped, keywords case-insensitive, and an
 * `EXPLAIN` or `EXPLAIN QUERY PLAN` prefix seen through (SQLite prepares the statement it
 * explains, and preparing a PRAGMA already applies it).
 *
 * The checks built on it run before the statement is prepared, because SQLite applies many
 * PRAGMA assignments while preparing them: a check after `prepare()` comes too late.
 */

/** One token of the statement's head. */
export type SqlToken =
  | { readonly kind: "word"; readonly text: string }
  | { readonly kind: "quoted"; readonly text: string }
  | { readonly kind: "string" }
  | { readonly kind: "punct"; readonly text: string };

/**
 * The first `max` tokens of `sql`, comments and whitespace skipped. Words are lowercased;
 * quoted identifiers ("x", [x], `x`) are given without their quotes; string literals carry no
 * text. Stops early at the end of the text.
 */
export function sqlTokens(sql: string, max: number): SqlToken[] {
  const out: SqlToken[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n && out.length < max) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      out.push({ kind: "word", text: sql.slice(i, j).toLowerCase() });
      i = j;
    } else if (c === '"' || c === "`" || c === "[") {
      const close = c === "[" ? "]" : c;
      let j = i + 1;
      let text = "";
      while (j < n) {
        if (sql[j] === close) {
          if (close !== "]" && sql[j + 1] === close) {
            text += close;
            j += 2;
            continue;
          }
          break;
        }
        text += sql[j];
        j++;
      }
      out.push({ kind: "quoted", text: text.toLowerCase() });
      i = j + 1;
    } else if (c === "'") {
      let j = i + 1;
      while (j < n) {
        if (sql[j] === "'") {
          if (sql[j + 1] === "'") {
            j += 2;
            continue;
          }
          break;
        }
        j++;
      }
      out.push({ kind: "string" });
      i = j + 1;
    } else {
      out.push({ kind: "punct", text: c });
      i++;
    }
  }
  return out;
}

/**
 * The statement's tokens after any `EXPLAIN` / `EXPLAIN QUERY PLAN` prefix, and its first
 * keyword ("" for an empty statement).
 */
export function statementHead(sql: string, max = 8): { keyword: string; tokens: SqlToken[] } {
  let tokens = sqlTokens(sql, max + 3);
  const first = tokens[0];
  if (first?.kind === "word" && first.text === "explain") {
    const second = tokens[1];
    const third = tokens[2];
    const queryPlan =
      second?.kind === "word" &&
      second.text === "query" &&
      third?.kind === "word" &&
      third.text === "plan";
    tokens = tokens.slice(queryPlan ? 3 : 1);
  }
  tokens = tokens.slice(0, max);
  const head = tokens[0];
  return { keyword: head?.kind === "word" ? head.text : "", tokens };
}

/** A PRAGMA statement read from its tokens: its name and whether it assigns or takes an argument. */
export interface PragmaForm {
  /** The pragma's name, lowercased, without its schema. */
  readonly name: string;
  /** `PRAGMA x = v`: an assignment. */
  readonly assigns: boolean;
  /** `PRAGMA x(v)`: an argument, which for most pragmas is an assignment too. */
  readonly hasArgument: boolean;
}

/**
 * Reads `PRAGMA [schema.]name [= value | (value)]` from a statement whose first keyword is
 * `pragma`; undefined if the text does not have that shape.
 */
export function pragmaForm(tokens: readonly SqlToken[]): PragmaForm | undefined {
  const name = (t: SqlToken | undefined): string | undefined =>
    t !== undefined && (t.kind === "word" || t.kind === "quoted") ? t.text : undefined;
  let i = 1;
  let pragma = name(tokens[i]);
  if (pragma === undefined) return undefined;
  const dot = tokens[i + 1];
  if (dot?.kind === "punct" && dot.text === ".") {
    i += 2;
    pragma = name(tokens[i]);
    if (pragma === undefined) return undefined;
  }
  const next = tokens[i + 1];
  return {
    name: pragma,
    assigns: next?.kind === "punct" && next.text === "=",
    hasArgument: next?.kind === "punct" && next.text === "(",
  };
}
