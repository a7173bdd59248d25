/**
 * The programs' logger: pino, JSON lines on stderr, with a level chosen by -log-level.
 */
import { pino } from "pino";
import type { NexusLogger } from "../node/options.js";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * A NexusLogger writing JSON lines to stderr (fd 2, synchronously, so a crash loses no line): pino
 * itself, since the NexusLogger contract is pino's `(fields, msg)`.
 */
export function createCliLogger(level: LogLevel, bindings: Record<string, unknown>): NexusLogger {
  return pino(
    { level, base: { pid: process.pid, ...bindings } },
    pino.destination({ fd: 2, sync: true }),
  );
}
