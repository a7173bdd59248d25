/**
 * A small MySQL/MariaDB lexer: words, quoted names, strings, `?` placeholders and operators, with
 * comments skipped. The statement checks (statement-classifier.ts) and the placeholder binding
 * (placeholders.ts) read its tokens, so they never look inside literals or comments.
 *
 * - `#` and `--` followed by whitespace or the end of the text comment to the end of
 *   the line; `/* ... *\/` is a comment, but `/*! ... *\/` and `/*M! ... *\/` (optionally with a
 *   version number) are executed by the server, so their content is lexed as code.
 * - `'...'` and `"..."` are strings (a backslash escapes the next character, a doubled quote is
 *   one quote: the pinned sql_mode has no NO_BACKSLASH_ESCAPES nor ANSI_QUOTES); `` `...` `` is a
 *   quoted name (a doubled backtick is one backtick, no backslash escapes).
 *
 * Linear time: every step consumes at least one character and never looks back, so a hostile
 * statement cannot stall the apply path with its length alone.
 */
import { Refusal } from "./refusal.js";

/** One token of a statement. */
export interface Token {
  readonly kind: "word" | "ident" | "string" | "param" | "op";
  /** Lowercased for words; the unquoted name for idents; the character(s) for ops. */
  readonly text: string;
  /** UTF-16 offsets of the token in the statement: [start, end). */
  readonly start: number;
  readonly end: number;
}

function isWordChar(ch: string): boolean {
  return /[A-Za-z0-9_$\u0080-\uffff]/.test(ch);
}

/**
 * The tokens of `sql`, comments left out. Throws Refusal for an unterminated quote or comment.
 */
export function lex(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let inExecutable = false;
  const n = sql.length;
  while (i < n) {
    const ch = sql[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (
      ch === "#" ||
      (ch === "-" && sql[i + 1] === "-" && /[\s]|^$/.test(sql[i + 2] ?? ""))
    ) {
      while (i < n && sql[i] !== "\n") i++;
    } else if (ch === "/" && sql[i + 1] === "*") {
      // /*! ... */ and /*M! ... */ are executed by the server: their content is code.
      const exec = /^\/\*M?!\d{0,6}/.exec(sql.slice(i, i + 10));
      if (exec !== null) {
        inExecutable = true;
        i += exec[0].length;
      } else {
        const close = sql.indexOf("*/", i + 2);
        if (close < 0) throw new Refusal("the statement has an unterminated /* comment");
        i = close + 2;
      }
    } else if (ch === "*" && sql[i + 1] === "/" && inExecutable) {
      inExecutable = false;
      i += 2;
    } else if (ch === "'" || ch === '"' || ch === "`") {
      const start = i;
      let text = "";
      i++;
      for (;;) {
        if (i >= n) throw new Refusal(`the statement has an unterminated ${ch}quote${ch}`);
        const c = sql[i]!;
        if (c === "\\" && ch !== "`") {
          text += sql.slice(i, i + 2);
          i += 2;
        } else if (c === ch) {
          if (sql[i + 1] === ch) {
            text += c;
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          text += c;
          i++;
        }
      }
      out.push({ kind: ch === "`" ? "ident" : "string", text, start, end: i });
    } else if (ch === "?") {
      out.push({ kind: "param", text: "?", start: i, end: i + 1 });
      i++;
    } else if (isWordChar(ch)) {
      const start = i;
      while (i < n && isWordChar(sql[i]!)) i++;
      out.push({ kind: "word", text: sql.slice(start, i).toLowerCase(), start, end: i });
    } else {
      const two = sql.slice(i, i + 2);
      const op = two === "@@" || two === ":=" ? two : ch;
      out.push({ kind: "op", text: op, start: i, end: i + op.length });
      i += op.length;
    }
  }
  return out;
}

/** Whether `t` is the word `w` (or one of them). */
export const word = (t: Token | undefined, ...w: string[]): boolean =>
  t !== undefined && t.kind === "word" && w.includes(t.text);

/** Whether `t` is the operator `o`. */
export const op = (t: Token | undefined, o: string): boolean =>
  t !== undefined && t.kind === "op" && t.text === o;
