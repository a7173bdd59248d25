/**
 * Flags without a command line: every flag of the node programs can also come from an environment
 * variable (its name derived from the flag's, `-grpcPort` is NEXUS_GRPC_PORT) or from a config
 * file (`-config nexus.yaml`, JSON or YAML, keys are the flag names). A flag on the command line
 * wins over the environment, which wins over the file, which wins over the default.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import type { FlagSpec, FlagValue, ParsedFlags } from "./flags.js";
import { FlagError, readValue } from "./flags.js";

/** The `-config` flag of the node programs. */
export const CONFIG_FLAG: FlagSpec = {
  name: "config",
  kind: "string",
  help: "a JSON or YAML file of flag values, keys as the flag names (e.g. grpcPort: 9121); flags and environment variables win over it",
};

/**
 * Flags whose variable is read by their own code, with its own precedence (a secret's file flag
 * wins over it): the generic layer leaves them alone. NEXUS_REDIS_PASSWORD is -redisPassword's.
 */
const READ_BY_OWN_CODE = new Set(["redisPassword"]);

/**
 * The environment variable of a flag: NEXUS_ and the flag's words in capitals joined by `_`,
 * the words split at dashes, dots and lower-to-upper case changes, and a leading "nexus" word
 * dropped (so -nexus-node-url is NEXUS_NODE_URL, -grpcPort NEXUS_GRPC_PORT, -metadataDB
 * NEXUS_METADATA_DB, -nexusLeaseBasedReads NEXUS_LEASE_BASED_READS).
 */
export function envNameOf(flag: string): string {
  const words = flag
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .split(/[\s._-]+/)
    .filter((w) => w !== "")
    .map((w) => w.toUpperCase());
  if (words[0] === "NEXUS" && words.length > 1) words.shift();
  return `NEXUS_${words.join("_")}`;
}

/** A config file's contents: an object of flag names to values. Throws FlagError naming the file. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new FlagError(`config file ${file}: cannot read it: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    const ext = extname(file).toLowerCase();
    // YAML is a superset of JSON, but JSON's own parser gives JSON's error positions.
    doc = ext === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new FlagError(`config file ${file}: not valid JSON or YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new FlagError(
      `config file ${file}: must be an object of flag names to values, e.g. {"grpcPort": 9121}`,
    );
  }
  return doc as Record<string, unknown>;
}

/** A config file value as the text a command line would give. */
function fileText(spec: FlagSpec, key: string, file: string, v: unknown): string {
  if (Array.isArray(v) && spec.kind === "string" && v.every((x) => typeof x === "string")) {
    return v.join(","); // e.g. nexus-cluster-url as a list of URLs
  }
  if (typeof v === "string") return v;
  if (typeof v === "number" && spec.kind !== "bool") return String(v);
  if (typeof v === "boolean" && spec.kind === "bool") return String(v);
  const want =
    spec.kind === "bool" ? "true or false" : spec.kind === "int" ? "an integer" : "a string";
  throw new FlagError(
    `config file ${file}: key "${key}" must be ${want}, got ${JSON.stringify(v)}`,
  );
}

function boolOf(raw: string, where: string): boolean {
  const t = raw.trim().toLowerCase();
  if (["true", "1", "t", "yes"].includes(t)) return true;
  if (["false", "0", "f", "no", ""].includes(t)) return false;
  throw new FlagError(`${where} is true or false, got "${raw}"`);
}

function valueOf(spec: FlagSpec, raw: string, where: string): FlagValue {
  if (spec.kind === "bool") return boolOf(raw, where);
  try {
    return readValue(spec, raw);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    throw new FlagError(`${where}: ${err.message}`);
  }
}

/**
 * Fills the flags not given on the command line from the environment, then from the config file
 * named by -config (or NEXUS_CONFIG). Throws FlagError naming the variable, or the file and key,
 * for a bad value, and for a key of the file that is no flag.
 */
export function withEnvAndFile(
  f: ParsedFlags,
  specs: readonly FlagSpec[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags {
  const given = f.given ?? new Set(f.values.keys());
  const values = new Map(f.values);
  const fromEnvOrFlags = new Set(given);
  for (const s of specs) {
    if (given.has(s.name) || READ_BY_OWN_CODE.has(s.name)) continue;
    const name = envNameOf(s.name);
    const raw = env[name];
    if (raw === undefined) continue;
    values.set(s.name, valueOf(s, raw, `environment variable ${name} (flag -${s.name})`));
    fromEnvOrFlags.add(s.name);
  }
  const configSpec = specs.find((s) => s.name === "config");
  const file = configSpec === undefined ? undefined : values.get("config");
  if (typeof file === "string" && file.trim() !== "") {
    const byName = new Map<string, FlagSpec>();
    for (const s of specs) for (const n of [s.name, ...(s.aliases ?? [])]) byName.set(n, s);
    const doc = readConfigFile(file);
    const seen = new Set<string>();
    for (const [key, v] of Object.entries(doc)) {
      // Keys as the flags are written, with or without their dashes.
      const spec = byName.get(key.replace(/^--?/, ""));
      if (spec === undefined || spec.name === "config") {
        throw new FlagError(
          `config file ${file}: unknown key "${key}"; the keys are the flag names ` +
            `(see --help), e.g. grpcPort or nexus-node-url`,
        );
      }
      if (seen.has(spec.name)) {
        throw new FlagError(`config file ${file}: flag ${spec.name} is given more than once`);
      }
      seen.add(spec.name);
      if (fromEnvOrFlags.has(spec.name)) continue;
      values.set(
        spec.name,
        valueOf(spec, fileText(spec, key, file, v), `config file ${file}: key "${key}"`),
      );
    }
  }
  return { ...f, values };
}
