/**
 * A small MySQL/MariaDB lexer: words, quoted names, strings, `?` placeholders and operators, with
 * comments skipped. The statement checks (statement-classifier.ts) and the placeholder binding
 * (placeholders.ts) read its tokens, so they never look inside literals or comments.
 *
 * - Whitespace is the server's: ASCII only. A Unicode space (U+00A0, ...) is part of a name, as
 *   the server reads it.
 * - `#`, and `--` followed by an ASCII space or control character (or the end), comment to the end
 *   of the line (or to a NUL character, where the server ends them too).
 * - `/* ... *\/` is a comment, but `/*! ... *\/` and `/*M! ... *\/` (optionally with a version
 *   number) are executed by the server, so their content is lexed as code.
 * - `'...'` and `"..."` are strings (a backslash escapes the next character, a doubled quote is
 *   one quote: the pinned sql_mode has no NO_BACKSLASH_ESCAPES nor ANSI_QUOTES); `` `...` `` is a
 *   quoted name (a doubled backtick is one backtick, no backslash escapes).
 *
 * Where the server and this lexer could disagree, this lexer must see at least the code the server
 * runs: a comment that hides code from the checks but not from the server lets a statement that
 * differs between replicas through (a `--` followed by U+00A0 did: the server reads two minus signs and a name).
 *
 * Linear time: every step consumes at least one character and never goes back, and each
 * character is looked at a bounded number of times, so a hostile statement cannot stall the
 * apply path with its length alone.
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

const TAB = 0x09;
const CR = 0x0d;
const SPACE = 0x20;
const NUL = 0x00;
const LF = 0x0a;
const DEL = 0x7f;
const BACKSLASH = 0x5c;
const BACKTICK = 0x60;

/** The server's whitespace: ASCII space, tab, LF, VT, FF, CR (never a Unicode space). */
function isSpace(c: number): boolean {
  return c === SPACE || (c >= TAB && c <= CR);
}

/** Characters of unquoted names and keywords: ASCII letters, digits, `_`, `$`, U+0080 and up. */
function isWordChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x5f ||
    c === 0x24 ||
    c >= 0x80
  );
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
    const c = sql.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (c === 0x23 /* # */ || (c === 0x2d /* - */ && isDashDashComment(sql, i))) {
      // To the end of the line; the server also ends it at a NUL character.
      while (i < n && sql.charCodeAt(i) !== LF && sql.charCodeAt(i) !== NUL) i++;
      if (i < n && sql.charCodeAt(i) === LF) i++;
    } else if (c === 0x2f /* / */ && sql.charCodeAt(i + 1) === 0x2a /* * */) {
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
    } else if (c === 0x2a /* * */ && sql.charCodeAt(i + 1) === 0x2f /* / */ && inExecutable) {
      inExecutable = false;
      i += 2;
    } else if (c === 0x27 /* ' */ || c === 0x22 /* " */ || c === BACKTICK) {
      const start = i;
      const quote = sql[i]!;
      // The text is the content with each doubled quote made one; backslash pairs are kept.
      let text = "";
      i++;
      let run = i;
      for (;;) {
        if (i >= n) throw new Refusal(`the statement has an unterminated ${quote}quote${quote}`);
        const d = sql.charCodeAt(i);
        if (d === BACKSLASH && c !== BACKTICK) {
          i += 2;
        } else if (d === c) {
          if (sql.charCodeAt(i + 1) === c) {
            text += sql.slice(run, i + 1);
            i += 2;
            run = i;
          } else {
            text += sql.slice(run, i);
            i++;
            break;
          }
        } else {
          i++;
        }
      }
      out.push({ kind: c === BACKTICK ? "ident" : "string", text, start, end: i });
    } else if (c === 0x3f /* ? */) {
      out.push({ kind: "param", text: "?", start: i, end: i + 1 });
      i++;
    } else if (isWordChar(c)) {
      const start = i;
      while (i < n && isWordChar(sql.charCodeAt(i))) i++;
      out.push({ kind: "word", text: sql.slice(start, i).toLowerCase(), start, end: i });
    } else {
      const two = sql.slice(i, i + 2);
      const op = two === "@@" || two === ":=" ? two : sql[i]!;
      out.push({ kind: "op", text: op, start: i, end: i + op.length });
      i += op.length;
    }
  }
  return out;
}

/**
 * Whether the `-` at `i` starts a `-- ` comment: as the server reads it, two dashes followed by
 * an ASCII space or control character, or the end of the text. `--` followed by anything else
 * (a Unicode space included) is two minus signs.
 */
function isDashDashComment(sql: string, i: number): boolean {
  if (sql.charCodeAt(i + 1) !== 0x2d) return false;
  if (i + 2 >= sql.length) return true;
  const c = sql.charCodeAt(i + 2);
  return c <= SPACE || c === DEL;
}

/** Whether `t` is the word `w` (or one of them). */
export const word = (t: Token | undefined, ...w: string[]): boolean =>
  t !== undefined && t.kind === "word" && w.includes(t.text);

/** Whether `t` is the operator `o`. */
export const op = (t: Token | undefined, o: string): boolean =>
  t !== undefined && t.kind === "op" && t.text === o;
