/**
 * Command-line flags as the original's Go programs take them: a long flag with one dash or two,
 * `-flag value` or `-flag=value`; booleans as `-flag`, `-flag=true` or `-flag=false`. Parsing is
 * node:util's parseArgs (strict) after the one-dash forms are rewritten to two dashes; this module
 * adds typed values, validation and the usage text.
 */
import { parseArgs } from "node:util";

/** One flag: its name without dashes, how its value is read, and its help line. */
export type FlagSpec =
  | {
      readonly name: string;
      readonly kind: "string";
      readonly help: string;
      readonly default?: string;
      /** Other accepted names (e.g. the original's two spellings of one flag). */
      readonly aliases?: readonly string[];
    }
  | {
      readonly name: string;
      readonly kind: "int";
      readonly help: string;
      readonly default?: number;
      readonly min: number;
      readonly max?: number;
      readonly aliases?: readonly string[];
    }
  | {
      readonly name: string;
      readonly kind: "bool";
      readonly help: string;
      readonly aliases?: readonly string[];
    };

export type FlagValue = string | number | boolean;

/** Parsed flags (by canonical name) and positionals. Absent flags without defaults are absent. */
export interface ParsedFlags {
  readonly values: ReadonlyMap<string, FlagValue>;
  readonly positionals: readonly string[];
  /** Whether -h, -help or --help was given. */
  readonly help: boolean;
  /** The canonical names of the flags given on the command line (not defaulted). */
  readonly given?: ReadonlySet<string>;
}

/** A flag error: the message says which flag and what is expected. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

const TRUE = new Set(["true", "1", "t", "yes"]);
const FALSE = new Set(["false", "0", "f", "no"]);

/**
 * Parses argv against specs. Throws FlagError for an unknown flag, a missing or malformed value,
 * or a value out of range.
 */
export function parseFlags(
  argv: readonly string[],
  specs: readonly FlagSpec[],
  opts: {
    allowPositionals?: boolean;
    /** Everything from the first positional on is positional (a command and its arguments). */
    stopAtPositional?: boolean;
  } = {},
): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    for (const a of s.aliases ?? []) byName.set(a, s);
  }
  const values = new Map<string, FlagValue>();
  const rest: string[] = [];
  const trailing: string[] = [];
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "-h" || a === "-help" || a === "--help") {
      help = true;
      continue;
    }
    // One dash or two; a lone "-" and negative numbers are values, not flags.
    const m = /^--?([A-Za-z][A-Za-z0-9._-]*)(=.*)?$/s.exec(a);
    if (m === null) {
      if (opts.stopAtPositional === true) {
        trailing.push(...argv.slice(i));
        break;
      }
      // Not a flag name ("-5", "-_x"): parseArgs would take it for an option and refuse it.
      if (a.startsWith("-") && a !== "-") {
        throw new FlagError(`unknown flag -${a.replace(/^-+/, "").split("=", 1)[0]!}`);
      }
      rest.push(a);
      continue;
    }
    const name = m[1]!;
    const spec = byName.get(name);
    if (spec === undefined) throw new FlagError(`unknown flag -${name}`);
    if (spec.kind === "bool") {
      // parseArgs refuses "--b=false"; booleans are read here, as Go's flag package reads them.
      const raw = m[2]?.slice(1);
      if (raw === undefined || TRUE.has(raw.toLowerCase())) values.set(spec.name, true);
      else if (FALSE.has(raw.toLowerCase())) values.set(spec.name, false);
      else throw new FlagError(`flag -${name} is true or false, got "${raw}"`);
      continue;
    }
    if (m[2] === undefined) {
      // "-flag value": the next token is the value, whatever it looks like ("-5", "-- x").
      if (i + 1 >= argv.length) {
        throw new FlagError(`flag -${name} needs a value: -${name} <value> or -${name}=<value>`);
      }
      rest.push(`--${name}=${argv[++i]!}`);
      continue;
    }
    rest.push(`--${name}${m[2]}`);
  }
  const options: Record<string, { type: "string"; multiple: true }> = {};
  for (const name of byName.keys()) {
    if (byName.get(name)!.kind !== "bool") options[name] = { type: "string", multiple: true };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: rest,
      options,
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    // Unreachable: every token parseArgs could refuse was refused above, with a clearer message.
    throw new FlagError(`bad flags: ${(err as Error).message}`);
  }
  for (const [name, raw] of Object.entries(parsed.values)) {
    const spec = byName.get(name)!;
    const list = raw as string[];
    if (list.length > 1 || values.has(spec.name)) {
      throw new FlagError(`flag -${spec.name} is given more than once`);
    }
    values.set(spec.name, readValue(spec, list[0]!));
  }
  const given = new Set(values.keys());
  for (const s of specs) {
    if (!values.has(s.name) && s.kind !== "bool" && s.default !== undefined) {
      values.set(s.name, s.default);
    }
  }
  const positionals = [...parsed.positionals, ...trailing];
  if (opts.allowPositionals !== true && positionals.length > 0) {
    throw new FlagError(`unexpected argument "${positionals[0]!}"`);
  }
  return { values, positionals, help, given };
}

/** A flag's value from text (a command line, an environment variable, a config file). */
export function readValue(spec: FlagSpec, raw: string): FlagValue {
  if (spec.kind === "string") return raw;
  if (spec.kind === "int") {
    const v = raw.trim() === "" ? NaN : Number(raw);
    const max = spec.max ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isSafeInteger(v) || v < spec.min || v > max) {
      throw new FlagError(
        `flag -${spec.name} must be an integer from ${spec.min} to ${max}, got "${raw}"`,
      );
    }
    return v;
  }
  return raw === "true";
}

/**
 * The flags section of a usage text, one flag per line with its default; with `envName`, also
 * the environment variable that gives it.
 */
export function describeFlags(
  specs: readonly FlagSpec[],
  envName?: (flag: string) => string,
): string {
  const lines = specs.map((s) => {
    const names = [s.name, ...(s.aliases ?? [])].map((n) => `-${n}`).join(", ");
    const arg = s.kind === "string" ? " <string>" : s.kind === "int" ? " <int>" : "";
    const def =
      s.kind !== "bool" && s.default !== undefined && s.default !== ""
        ? ` (default ${String(s.default)})`
        : "";
    const env = envName === undefined ? "" : ` [env ${envName(s.name)}]`;
    return `  ${names}${arg}\n      ${s.help}${def}${env}`;
  });
  return lines.join("\n") + "\n";
}

/** Typed getters over ParsedFlags. */
export function str(f: ParsedFlags, name: string): string | undefined {
  const v = f.values.get(name);
  return typeof v === "string" ? v : undefined;
}

export function int(f: ParsedFlags, name: string): number | undefined {
  const v = f.values.get(name);
  return typeof v === "number" ? v : undefined;
}

export function bool(f: ParsedFlags, name: string): boolean {
  return f.values.get(name) === true;
}
