/**
 * `-o text|json` of the client commands (`repl listNodes`, `nexus status`): text for people, one
 * JSON document for scripts, with the stable field names documented in docs/configuration.md.
 */
import type { FlagSpec, ParsedFlags } from "./flags.js";
import { FlagError, str } from "./flags.js";

export const OUTPUT_FLAG: FlagSpec = {
  name: "o",
  kind: "string",
  aliases: ["output"],
  default: "text",
  help: "output format: text, or json for scripts (field names in docs/configuration.md)",
};

/** The -o value, checked. Throws FlagError for anything but text or json. */
export function outputFormat(f: ParsedFlags): "text" | "json" {
  const v = str(f, "o") ?? "text";
  if (v !== "text" && v !== "json") {
    throw new FlagError(`flag -o must be text or json, got "${v}"`);
  }
  return v;
}
