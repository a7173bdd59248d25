/**
 * Inputs for the MySQL fuzz tests (mysql-fuzz.test.ts): a seeded generator, corpora of real
 * statements and connection strings, mutators, and long inputs that would expose a classifier
 * that is not linear-time.
 *
 * Input `i` of seed `s` depends only on (s, i), so any input can be regenerated alone:
 * NEXUS_FUZZ_SEED=s NEXUS_FUZZ_CASE=i.
 */

/** A small, fast, seedable generator (sfc32), seeded through splitmix32. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    let s = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

/** Real statements: DDL, DML, every kind of comment, quoting, escapes, unicode, NUL bytes. */
export const SQL_CORPUS: readonly string[] = [
  "create table sync_table (id INT PRIMARY KEY AUTO_INCREMENT, data VARCHAR(50) NOT NULL, ts timestamp(3) default current_timestamp(3) on update current_timestamp(3));",
  "insert into sync_table (data) values ('bar');",
  "insert into kv (k, v) values (?, ?) on duplicate key update v = values(v)",
  "select v from kv where k = ?",
  "update t set ts = now(6), r = rand(), u = unix_timestamp() where id in (1, 2, 3)",
  "delete from t where a = 'it''s' and b = \"say \\\"hi\\\"\" and c = `we``ird`",
  "replace into `order` (`id`, `select`) values (1, 'x')",
  "insert into t values (uuid())",
  "insert into t values (sysdate()), (last_insert_id()), (connection_id())",
  "insert into t /*! values (uuid()) */",
  "insert into t /*M!100101 values (uuid()) */",
  "/*!50000 create table x (a int) */",
  "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;",
  "select 1 -- a comment\n, 2 # another\n, 3 /* and a block */",
  "select 1 --not a comment",
  "select 1;",
  "select 1; select 2",
  "(select 1) union (select 2)",
  "with recursive r (n) as (select 1 union all select n + 1 from r where n < 10) select * from r",
  "alter table t add column v int not null default 0, add index i (v), algorithm=inplace",
  "alter table m engine memory",
  "create unique index i on t (v(10) desc)",
  "create table h (a int) with system versioning",
  "create temporary table x (a int)",
  "create definer = root@localhost view v as select 1",
  "create trigger tr before insert on t for each row set new.a = 1",
  "DELIMITER //\nCREATE PROCEDURE p() BEGIN SELECT 1; END //\nDELIMITER ;",
  "create event e on schedule every 1 day do delete from t",
  "rename table a to b, b to a",
  "truncate table t",
  "drop table if exists t, `u`",
  "drop database nexus",
  "begin",
  "start transaction with consistent snapshot",
  "set autocommit = 0",
  "SET @@session.autocommit = 1",
  "set @x := 1",
  "update t set a = (@i := @i + 1)",
  "select a from t into outfile '/tmp/x'",
  "select a from t into @x",
  "load data infile '/tmp/x' into table t",
  "grant all on *.* to x",
  "call p()",
  "show tables",
  "describe t",
  "explain select * from t",
  "values (1, 2), (3, 4)",
  "table t",
  "do sleep(1)",
  "select * from _nexus_applied",
  "select * from `_NEXUS_APPLIED`",
  "insert into t values ('uuid() and sysdate() in a string'), (\"@x\"), ('_nexus_applied')",
  "insert into t values ('caf\u00e9', '\u{1d11e}', '\u05e9\u05dc\u05d5\u05dd', '\u202e')",
  "insert into \u00e9t\u00e9 (\u540d\u524d) values (_utf8mb4'x' collate utf8mb4_bin)",
  "insert into t values ('a\u0000b', x'00ff', b'0101', 0x1F, N'nat')",
  "select 'a\\0b\\n\\t\\Z\\\\\\%\\_'",
  'select "double "" quoted"',
  "select `a``b` from `c`.`d`",
  "select * from t where a = ? and b = '?' and c = `?` -- ?",
  "select json_extract('{\"a\": [1, 2]}', '$.a[0]')",
  "select cast(1e308 * 10 as decimal(65, 30)), -9223372036854775808, 18446744073709551615",
  "insert into t (a) select a from u where not exists (select 1 from v where v.a = u.a) for update",
  "create table p (id int primary key, c int, foreign key (c) references p (id) on delete cascade) engine=InnoDB default charset=utf8mb4",
  "create table g (a int, b int as (a + 1) virtual, c int generated always as (a * 2) stored)",
  "select current_user, user(), database(), version()",
  "insert into t values (nextval(s))",
  "lock tables t write",
  "xa start 'x'",
  "",
  "   ",
  "-- only a comment",
  "/* unterminated",
  "select 'unterminated",
  'select "unterminated',
  "select `unterminated",
  "select 1 /*! unterminated executable",
  "*/ select 1",
];

/** Pieces that mean something to the lexer, inserted by the mutators. */
const SQL_PIECES: readonly string[] = [
  "'",
  '"',
  "`",
  "\\",
  "\\'",
  "''",
  "``",
  "/*",
  "*/",
  "/*!",
  "/*M!",
  "/*!50000",
  "/*M!100101 ",
  "-- ",
  "--",
  "#",
  "\n",
  "\r\n",
  "\t",
  "\u0000",
  "?",
  "@",
  "@@",
  ":=",
  ";",
  "(",
  ")",
  ".",
  ",",
  "=",
  " ",
  "select",
  "insert",
  "create",
  "table",
  "temporary",
  "engine",
  "into",
  "outfile",
  "uuid",
  "uuid(",
  "current_user",
  "_nexus_applied",
  "set",
  "DELIMITER //",
  "DELIMITER ;",
  "\u00e9",
  "\u{1d11e}",
  "\ud800",
  "\udc00",
  "\u00a0",
  "\u2028",
  "\ufeff",
  "\uffff",
];

/** Characters drawn for random text: mostly SQL punctuation, some letters, some unicode. */
const ALPHABET = [
  ..."'\"`\\/*-#!?@:;()., =\n\t\u0000M0123456789",
  ..."abcdefghijklmnopqrstuvwxyzSELCTINRU_$",
  "\u00e9",
  "\u{1d11e}",
  "\ud800",
  "\u00a0",
  "\u2028",
];

function randomText(r: Rng, max: number): string {
  const n = r.int(max + 1);
  let s = "";
  for (let i = 0; i < n; i++) s += r.pick(ALPHABET);
  return s;
}

/** One mutation of `s`; `pieces` and `corpus` are spliced in. */
function mutate(
  r: Rng,
  s: string,
  pieces: readonly string[],
  corpus: readonly string[],
  maxLength: number,
): string {
  const at = r.int(s.length + 1);
  const to = Math.min(s.length, at + r.int(16) + 1);
  switch (r.int(10)) {
    case 0: // insert a meaningful piece
      return s.slice(0, at) + r.pick(pieces) + s.slice(at);
    case 1: // insert random characters
      return s.slice(0, at) + randomText(r, 4) + s.slice(at);
    case 2: // delete a range
      return s.slice(0, at) + s.slice(to);
    case 3: // duplicate a range
      return s.slice(0, to) + s.slice(at, to) + s.slice(to);
    case 4: // replace a range with a piece
      return s.slice(0, at) + r.pick(pieces) + s.slice(to);
    case 5: {
      // splice in part of another input
      const o = r.pick(corpus);
      const oa = r.int(o.length + 1);
      return s.slice(0, at) + o.slice(oa, oa + r.int(40)) + s.slice(at);
    }
    case 6: // truncate
      return s.slice(0, at);
    case 7: {
      // repeat a piece many times (growth: nesting, long runs)
      const p = r.chance(0.5) ? r.pick(pieces) : s.slice(at, to);
      const times = 1 + r.int(Math.max(1, Math.floor(maxLength / Math.max(1, p.length) / 4)));
      return s.slice(0, at) + p.repeat(Math.min(times, 300)) + s.slice(at);
    }
    case 8: // flip case of a range
      return s.slice(0, at) + s.slice(at, to).toUpperCase() + s.slice(to);
    default: {
      // swap two ranges
      const b = r.int(s.length + 1);
      const [x, y] = at < b ? [at, b] : [b, at];
      return (
        s.slice(0, x) + s.slice(y, y + 8) + s.slice(x + 8, y) + s.slice(x, x + 8) + s.slice(y + 8)
      );
    }
  }
}

function mutated(
  r: Rng,
  corpus: readonly string[],
  pieces: readonly string[],
  maxLength: number,
): string {
  if (r.chance(0.08)) return randomText(r, 200);
  let s = r.pick(corpus);
  const n = 1 + r.int(6);
  for (let k = 0; k < n; k++) s = mutate(r, s, pieces, corpus, maxLength);
  return s.length > maxLength ? s.slice(0, maxLength) : s;
}

/** A save or load command as the store receives it: bytes and optional `args.params`. */
export interface StatementInput {
  readonly data: Uint8Array;
  readonly params: string | undefined;
}

const PARAM_VALUES = [
  "null",
  "1",
  "-0",
  "1e400",
  '"x"',
  '"\\u0000"',
  '"\'; drop table t; --"',
  "true",
  '{"base64": "AAEC"}',
  '{"base64": "!!"}',
  '{"base64": 1}',
  "[]",
  "{}",
];

/** Input `i` of seed `seed` for the statement classifier. */
export function statementInput(seed: number, i: number): StatementInput {
  const r = new Rng(seed, i);
  const text = mutated(r, SQL_CORPUS, SQL_PIECES, 16 * 1024);
  let data = new TextEncoder().encode(text);
  if (r.chance(0.05)) {
    // Bytes that are not UTF-8 (a lone continuation byte, a truncated sequence, an overlong NUL).
    const bad = r.pick([[0x80], [0xc3], [0xe2, 0x82], [0xc0, 0x80], [0xff], [0xed, 0xa0, 0x80]]);
    const at = r.int(data.length + 1);
    data = new Uint8Array([...data.subarray(0, at), ...bad, ...data.subarray(at)]);
  }
  let params: string | undefined;
  const p = r.int(10);
  if (p < 3) {
    // As many values as there are `?` in the text (some are inside literals: a mismatch then).
    const n = (text.match(/\?/g) ?? []).length;
    params = `[${Array.from({ length: n }, () => r.pick(PARAM_VALUES)).join(",")}]`;
  } else if (p === 3) {
    params = r.pick(["", "[", "{}", "1", '"x"', "[1,", "null", "[[1]]", randomText(r, 10)]);
  }
  return { data, params };
}

/** Connection strings of both forms, each with the password SECRET. */
export const SECRET = "Pw0rd-S3cret";
export const DSN_CORPUS: readonly string[] = [
  `root:${SECRET}@tcp(127.0.0.1:3306)/nexus?autocommit=false`,
  `app:${SECRET}@tcp(db.local:3307)/x`,
  `u:${SECRET}@tcp(10.1.2.3)/shop?parseTime=true&loc=UTC`,
  `u:${SECRET}@tcp([::1]:3310)/nexus`,
  `u:${SECRET}@/nexus`,
  `u:${SECRET}@tcp(h:1)/db?tls=true`,
  `mysql://u:${SECRET}@10.0.0.1/nexus`,
  `mysql://u:${SECRET}@127.0.0.1:3399/n%C3%A9`,
  `mysql://root:${SECRET}@[::1]:3306/nexus?tls=skip-verify`,
  `MYSQL://u:${SECRET}@host/db`,
  "root@tcp(127.0.0.1:3306)/nexus",
  "/nexus",
  "tcp([::1]:3310)/nexus",
  "mysql://127.0.0.1:3399/db",
];

const DSN_PIECES: readonly string[] = [
  ":",
  "@",
  "/",
  "?",
  "&",
  "=",
  "(",
  ")",
  "[",
  "]",
  "%",
  "%zz",
  "%C3",
  "%00",
  "#",
  " ",
  "\u0000",
  "\u00e9",
  "\ud800",
  "tcp",
  "unix",
  "mysql://",
  "postgres://",
  "://",
  "99999",
  "0",
  "65535",
  "-1",
  "1e3",
  "tls=",
  "tls=true",
  "tls=preferred",
  "autocommit",
  SECRET,
];

/** Input `i` of seed `seed` for the DSN parser. */
export function dsnInput(seed: number, i: number): string {
  const r = new Rng(seed, i);
  return mutated(r, DSN_CORPUS, DSN_PIECES, 4096);
}

/**
 * Long inputs (about 1 MB each) that a classifier which is not linear-time would take minutes or
 * hours over: unterminated and nested comments, runs of quotes and escapes, deep parentheses.
 */
export function longStatements(): { name: string; sql: string; params?: string }[] {
  const MB = 1 << 20;
  const n = (unit: string): number => Math.floor(MB / unit.length);
  const placeholders = Math.floor(MB / 4);
  return [
    { name: "1 MB of unterminated /* */ comment openers", sql: "/*".repeat(n("/*")) },
    {
      name: "1 MB of nested comments /* /* ... */ */",
      sql: `select 1 ${"/*".repeat(n("/*") / 2)}${"*/".repeat(n("*/") / 2)}`,
    },
    {
      name: "1 MB of nested executable comments /*! /*! ... */ */",
      sql: `insert into t ${"/*!".repeat(n("/*!") / 2)} values (1) ${"*/".repeat(n("*/") / 2)}`,
    },
    { name: "1 MB of versioned comment openers /*!50000", sql: "/*!50000".repeat(n("/*!50000")) },
    { name: "a 1 MB string of \\' escapes", sql: `select '${"\\'".repeat(n("\\'"))}'` },
    { name: "a 1 MB string of doubled quotes", sql: `select '${"''".repeat(n("''"))}'` },
    { name: "1 MB of empty strings", sql: `select ${"'' ".repeat(n("'' "))}` },
    { name: "an unterminated 1 MB string of backslashes", sql: `select '${"\\".repeat(MB)}` },
    { name: "a 1 MB quoted name of doubled backticks", sql: `select \`${"``".repeat(n("``"))}\`` },
    { name: "1 MB of opening parentheses", sql: `select ${"(".repeat(MB)}` },
    { name: "1 MB of leading parentheses before a verb", sql: `${"(".repeat(MB)}select 1` },
    { name: "a 1 MB line comment", sql: `select 1 -- ${"x".repeat(MB)}` },
    { name: "1 MB of # comments", sql: `select 1 ${"#\n".repeat(n("#\n"))}` },
    { name: "1 MB of semicolons", sql: `select 1${";".repeat(MB)}` },
    { name: "1 MB of one word", sql: `select ${"a".repeat(MB)}` },
    {
      name: "1 MB of unicode words",
      sql: `select ${"\u00e9t\u00e9 ".repeat(n("\u00e9t\u00e9 "))}`,
    },
    { name: "1 MB of @ signs", sql: `insert into t values (${"@".repeat(MB)})` },
    { name: "1 MB of NUL bytes", sql: `select '${"\u0000".repeat(MB)}'` },
    {
      name: "256k placeholders bound to 256k values",
      sql: `insert into t values ${"(?),".repeat(placeholders - 1)}(?)`,
      params: `[${Array.from({ length: placeholders }, (_, i) => (i % 2 === 0 ? "null" : '"x"')).join(",")}]`,
    },
  ];
}
