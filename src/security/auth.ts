/**
 * Tokens and permissions of the gRPC service (`-auth-file`). The file holds one line per token,
 * `<name> <sha256 of the token, 64 hex digits> <permissions>`, permissions comma-separated from
 * read, write and admin; `#` starts a comment. Tokens themselves are never stored: a call's
 * bearer token is hashed and compared with every line's hash in constant time.
 *
 * read allows Load, Check, ListNodes, ListMembers, NodeStatus and RequestOutcome; write allows
 * Save; admin allows membership changes, leadership transfer and consistency checks. A method not in the table needs
 * admin. Permissions do not imply one another: an operator's token usually has all three.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { NexusError } from "../errors/index.js";

export type Permission = "read" | "write" | "admin";

export const PERMISSIONS: readonly Permission[] = ["read", "write", "admin"];

/** One line of an auth file. */
export interface AuthEntry {
  readonly name: string;
  /** sha256 of the token, 32 bytes. */
  readonly hash: Buffer;
  readonly permissions: ReadonlySet<Permission>;
  /** Its line in the file, from 1. */
  readonly line: number;
}

/** The permission each method needs, by service type name and method name. */
const NEEDS: Readonly<Record<string, Readonly<Record<string, Permission>>>> = {
  "nexus.api.Nexus": {
    Check: "read",
    Load: "read",
    ListNodes: "read",
    Save: "write",
    AddNode: "admin",
    RemoveNode: "admin",
  },
  "nexus.api.NexusAdmin": {
    ListMembers: "read",
    AddMember: "admin",
    PromoteMember: "admin",
    ChangeMembers: "admin",
    TransferLeader: "admin",
  },
  "nexus.api.NexusChecks": {
    NodeStatus: "read",
    RequestOutcome: "read",
    CheckConsistency: "admin",
  },
};

/** The permission a method needs (admin for any method not in the table). */
export function permissionNeeded(service: string, method: string): Permission {
  return NEEDS[service]?.[method] ?? "admin";
}

/** The sha256 of a token as 64 lower-case hex digits: what an auth file line holds. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** A new random token (32 bytes, base64url: 43 characters). */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * Parses an auth file's text. Throws BAD_CONFIG listing every wrong line with its number and what
 * to write instead; a file without any token line is refused too (it would refuse every call).
 */
export function parseAuthFile(text: string, path: string): AuthEntry[] {
  const entries: AuthEntry[] = [];
  const problems: string[] = [];
  const names = new Map<string, number>();
  const hashes = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const hashAt = raw.indexOf("#");
    const content = (hashAt >= 0 ? raw.slice(0, hashAt) : raw).trim();
    if (content === "") return;
    const fields = content.split(/\s+/);
    if (fields.length !== 3) {
      problems.push(
        `line ${n}: expected 3 fields "<name> <sha256 hex of the token> <permissions>", found ${fields.length}`,
      );
      return;
    }
    const [name, hex, perms] = fields as [string, string, string];
    const wrong: string[] = [];
    if (!NAME.test(name)) {
      wrong.push(
        `the name "${name}" must be 1 to 64 letters, digits, ".", "_", "@" or "-", starting with a letter or digit`,
      );
    }
    if (!HEX64.test(hex)) {
      wrong.push(
        "the second field must be the sha256 of the token as 64 hex digits (nexus auth hash-token makes it)",
      );
    }
    const set = new Set<Permission>();
    for (const p of perms.split(",")) {
      if (!(PERMISSIONS as readonly string[]).includes(p)) {
        wrong.push(`unknown permission "${p}" (use read, write and admin, comma-separated)`);
      } else if (set.has(p as Permission)) {
        wrong.push(`permission "${p}" is given twice`);
      } else set.add(p as Permission);
    }
    const sameName = names.get(name);
    if (sameName !== undefined)
      wrong.push(`the name "${name}" is already used on line ${sameName}`);
    const key = hex.toLowerCase();
    const sameHash = hashes.get(key);
    if (sameHash !== undefined && HEX64.test(hex)) {
      wrong.push(`the same token hash is already on line ${sameHash}: give each token one line`);
    }
    if (wrong.length > 0) {
      problems.push(`line ${n}: ${wrong.join("; ")}`);
      return;
    }
    names.set(name, n);
    hashes.set(key, n);
    entries.push({ name, hash: Buffer.from(key, "hex"), permissions: set, line: n });
  });
  if (problems.length > 0) {
    throw new NexusError(
      "BAD_CONFIG",
      `auth file ${path} (-auth-file): ${problems.join("; ")}. Each line is ` +
        '"<name> <sha256 hex of the token> <read,write,admin>"; # starts a comment',
    );
  }
  if (entries.length === 0) {
    throw new NexusError(
      "BAD_CONFIG",
      `auth file ${path} (-auth-file) holds no token line, so every call would be refused; add ` +
        'lines "<name> <sha256 hex of the token> <read,write,admin>" (nexus auth new-token makes one)',
    );
  }
  return entries;
}

/** Reads and parses an auth file. Throws BAD_CONFIG (unreadable file, wrong lines). */
export function readAuthFile(path: string): AuthEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new NexusError(
      "BAD_CONFIG",
      `cannot read the auth file ${path} (-auth-file): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return parseAuthFile(text, path);
}

/** The outcome of checking a call's credentials. */
export type AuthDecision =
  | { readonly ok: true; readonly name: string }
  /** No token, a malformed header, or a token no line holds. */
  | { readonly ok: false; readonly code: "UNAUTHENTICATED" }
  /** A known token without the permission the method needs. */
  | { readonly ok: false; readonly code: "PERMISSION_DENIED"; readonly name: string };

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** The tokens of an auth file, reloadable. */
export class TokenAuth {
  readonly path: string;
  private entries: readonly AuthEntry[];

  private constructor(path: string, entries: readonly AuthEntry[]) {
    this.path = path;
    this.entries = entries;
  }

  /** Reads the file. Throws BAD_CONFIG saying which lines are wrong. */
  static load(path: string): TokenAuth {
    return new TokenAuth(path, readAuthFile(path));
  }

  /** The number of tokens in use. */
  get size(): number {
    return this.entries.length;
  }

  /**
   * Reads the file again. Throws BAD_CONFIG and keeps the tokens in use when the new file is
   * wrong. Returns the number of tokens now in use.
   */
  reload(): number {
    this.entries = readAuthFile(this.path);
    return this.entries.length;
  }

  /**
   * Checks an `authorization` header value for a method. The token's hash is compared with every
   * line's in constant time, whichever matches.
   */
  decide(authorization: string | undefined, service: string, method: string): AuthDecision {
    const m = authorization === undefined ? null : BEARER.exec(authorization);
    if (m === null) return { ok: false, code: "UNAUTHENTICATED" };
    const h = createHash("sha256").update(m[1]!, "utf8").digest();
    let found: AuthEntry | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(h, e.hash) && found === undefined) found = e;
    }
    if (found === undefined) return { ok: false, code: "UNAUTHENTICATED" };
    if (!found.permissions.has(permissionNeeded(service, method))) {
      return { ok: false, code: "PERMISSION_DENIED", name: found.name };
    }
    return { ok: true, name: found.name };
  }
}
