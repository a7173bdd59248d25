/**
 * Warnings about refused peer traffic, rate-limited per kind: the first of a kind is logged at
 * once, later ones at most once per interval with the count of those not logged in between. A
 * flood of hostile requests must not become a flood of log lines.
 */

/** Where the warnings go. */
export interface WarnLogger {
  /** Called as pino is: `(fields, msg)`. */
  warn(fields: Readonly<Record<string, unknown>>, msg: string): void;
}

/** Rate-limited warnings, keyed by kind. */
export class RefusalLog {
  private readonly logger: WarnLogger | undefined;
  private readonly intervalMs: number;
  private readonly kinds = new Map<string, { at: number; suppressed: number }>();

  /** `intervalMs`: at most one line per kind per interval. Default 10,000 ms. */
  constructor(logger: WarnLogger | undefined, intervalMs = 10_000) {
    this.logger = logger;
    this.intervalMs = intervalMs;
  }

  /** Logs `msg` with `fields` unless a line of the same `kind` was logged within the interval. */
  warn(kind: string, msg: string, fields: Record<string, unknown> = {}): void {
    const now = Date.now();
    const k = this.kinds.get(kind);
    if (k !== undefined && now - k.at < this.intervalMs) {
      k.suppressed++;
      return;
    }
    const suppressed = k?.suppressed ?? 0;
    if (this.kinds.size > 1000) this.kinds.clear();
    this.kinds.set(kind, { at: now, suppressed: 0 });
    this.logger?.warn(
      suppressed > 0 ? { ...fields, suppressedSinceLast: suppressed } : fields,
      msg,
    );
  }
}
