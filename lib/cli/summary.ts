// msgclient's --summary: send-to-ACK latencies in a log-linear histogram
// (constant memory for any input size, about 2% resolution), the counts and
// the rate, and the progress line shown on a terminal.

/** Buckets per doubling: 32 gives about 2.2% between bucket bounds. */
const SUB = 32;

export class LatencyHistogram {
  private readonly counts = new Map<number, number>();
  count = 0;
  min = Infinity;
  max = 0;

  /** Records one latency in microseconds. */
  add(us: number): void {
    const v = Math.max(us, 1);
    const b = Math.floor(Math.log2(v) * SUB);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.count++;
    if (us < this.min) this.min = us;
    if (us > this.max) this.max = us;
  }

  /** The p-th percentile (0 < p <= 100) in microseconds: the middle of its bucket, within min..max. NaN when empty. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (const b of [...this.counts.keys()].sort((x, y) => x - y)) {
      seen += this.counts.get(b) as number;
      if (seen >= rank) {
        const mid = 2 ** ((b + 0.5) / SUB);
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }
}

export function fmtUs(us: number): string {
  if (!Number.isFinite(us)) return '-';
  if (us >= 1e6) return `${(us / 1e6).toFixed(2)} s`;
  if (us >= 1e3) return `${(us / 1e3).toFixed(2)} ms`;
  return `${us.toFixed(0)} us`;
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export interface SummaryCounts {
  sent: number;
  ok: number;
  failed: number;
  elapsedMs: number;
}

/** The lines --summary prints at the end. */
export function summaryLines(c: SummaryCounts, h: LatencyHistogram): string[] {
  const secs = c.elapsedMs / 1000;
  const rate = secs > 0 ? c.ok / secs : 0;
  const lines = [`messages ${fmtInt(c.sent)} sent, ${fmtInt(c.ok)} OK, ${fmtInt(c.failed)} failed in ${secs.toFixed(3)} s (${fmtInt(rate)} msgs/s)`];
  if (h.count > 0) {
    const p = (q: number): string => fmtUs(h.percentile(q));
    lines.push(`latency  p50 ${p(50)}, p90 ${p(90)}, p99 ${p(99)}, max ${fmtUs(h.max)} (send to ACK, ${fmtInt(h.count)} ACKed OK)`);
  } else {
    lines.push('latency  - (no message was ACKed OK)');
  }
  return lines;
}

/** The progress line (without the carriage return). */
export function progressLine(c: SummaryCounts, rate: number): string {
  return `msgclient: ${(c.elapsedMs / 1000).toFixed(1)} s  sent ${fmtInt(c.sent)}  ok ${fmtInt(c.ok)}  failed ${fmtInt(c.failed)}  ${fmtInt(rate)} msgs/s`;
}
