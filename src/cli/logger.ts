/**
 * The programs' logger: pino on stderr, with a level chosen by -log-level and a format chosen by
 * -log-format. JSON lines (level names, ISO times) by default when stderr is not a terminal; text
 * lines a person reads (`time LEVEL message key=value ...`) on a terminal or with -log-format text.
 */
import { writeSync } from "node:fs";
import { pino } from "pino";
import type { DestinationStream } from "pino";
import type { NexusLogger } from "../node/options.js";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ["json", "text"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The format when none is asked for: text on a terminal, JSON otherwise. */
export function defaultLogFormat(isTerminal = process.stderr.isTTY === true): LogFormat {
  return isTerminal ? "text" : "json";
}

/** Fields of every line that the text format leaves out (pid is in the process, not the event). */
const TEXT_HIDDEN = new Set(["time", "level", "msg", "pid"]);

/** A value as the text format shows it: strings bare unless they hold spaces or quotes. */
function textValue(v: unknown): string {
  if (typeof v === "string") return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === "object" && v !== null) return JSON.stringify(v);
  return String(v);
}

/**
 * One JSON line as pino writes it (level as a name, time as an ISO string, see createCliLogger)
 * turned into `2026-12-03T03:12:46.123Z INFO  message key=value ...`.
 */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const level = String(o["level"] ?? "").toUpperCase();
  const fields = Object.entries(o)
    .filter(([k]) => !TEXT_HIDDEN.has(k))
    .map(([k, v]) => ` ${k}=${textValue(v)}`)
    .join("");
  return `${String(o["time"] ?? "")} ${level.padEnd(5)} ${String(o["msg"] ?? "")}${fields}\n`;
}

/** A pino destination writing text lines to fd synchronously (a crash loses no line). */
function textDestination(fd: number): DestinationStream {
  return {
    write(line: string): void {
      writeSync(fd, textLine(line));
    },
  };
}

/**
 * A NexusLogger writing to stderr (fd 2, synchronously, so a crash loses no line): pino itself,
 * since the NexusLogger contract is pino's `(fields, msg)`. `format` defaults to text on a
 * terminal and JSON otherwise.
 */
export function createCliLogger(
  level: LogLevel,
  bindings: Record<string, unknown>,
  format: LogFormat = defaultLogFormat(),
  fd = 2,
): NexusLogger {
  return pino(
    {
      level,
      base: { pid: process.pid, ...bindings },
      // Level names and ISO times, in JSON as in text.
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    format === "text" ? textDestination(fd) : pino.destination({ fd, sync: true }),
  );
}
