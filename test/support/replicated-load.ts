// Test support for the replicated-mode fault tests: a paced load of numbered
// messages from one client, faults fired by progress (ACKs seen), and the
// checker that reads the stream back and proves every message ACKed OK is
// in it exactly once. Reports availability (the share of sends answered OK)
// and ACK latency, overall and for the sends made while a fault was on.
import { AckError, MessageClient } from '../../dist/index';
import { connect } from 'nats';
import { decodeStreamMessage, readStream, type StreamRecord } from '../../dist/read/stream-reader';

export interface Fault {
  /** Fire once this share of the messages has been answered (0..1). */
  at: number;
  name: string;
  /** Starts the fault; the load goes on meanwhile. Resolves when the fault is over (healed). */
  run: () => Promise<void>;
  /** The load pauses at this share until this fault is over (so later faults happen under load). */
  holdAt?: number;
}

export interface LoadReport {
  sent: number;
  ok: number;
  statuses: Record<string, number>;
  availability: number;
  p99Ms: number;
  maxMs: number;
  /** Sends made while a fault was on (from its start until run() resolved, or 10 s). */
  fault: { sent: number; ok: number; availability: number; p99Ms: number; maxMs: number };
  okIds: Set<bigint>;
  events: string[];
}

function p99(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
}

/** Sends `total` messages through `client` with at most `inFlight` unanswered; fires `faults` by progress. */
export async function runLoad(client: MessageClient, total: number, inFlight: number, faults: Fault[]): Promise<LoadReport> {
  const t0 = performance.now();
  const statuses: Record<string, number> = {};
  const okIds = new Set<bigint>();
  const events: string[] = [];
  const latencies: number[] = [];
  const faultLatencies: number[] = [];
  let faultSent = 0;
  let faultOk = 0;
  const windows: Array<{ from: number; to: number }> = [];
  const pending = [...faults].sort((a, b) => a.at - b.at);
  const running: Array<Promise<void>> = [];
  const holds: Array<{ at: number; until: Promise<void> }> = [];
  let answered = 0;

  const inFault = (t: number): boolean => windows.some((w) => t >= w.from && t <= w.to);
  const fire = (): void => {
    while (pending.length > 0 && answered >= pending[0].at * total) {
      const f = pending.shift()!;
      const w = { from: performance.now(), to: Infinity };
      windows.push(w);
      events.push(`${f.name} at ${answered} answers (${Math.round(w.from - t0)} ms)`);
      const done = f.run().then(() => {
        w.to = Math.min(performance.now(), w.from + 10_000);
        events.push(`${f.name} over at ${answered} answers (${Math.round(w.to - w.from)} ms)`);
      });
      running.push(done);
      if (f.holdAt !== undefined) holds.push({ at: f.holdAt, until: done });
    }
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      for (const h of holds) if (i >= h.at * total) await h.until;
      const sentAt = performance.now();
      const during = inFault(sentAt);
      let status = 'OK';
      try {
        const ack = await client.send(`m-${i}`, { msgId: BigInt(i + 1), name: 'load' });
        okIds.add(ack.msgId);
      } catch (err) {
        status = err instanceof AckError ? err.statusName : `error: ${(err as Error).message}`;
      }
      const ms = performance.now() - sentAt;
      statuses[status] = (statuses[status] ?? 0) + 1;
      latencies.push(ms);
      if (during || inFault(performance.now())) {
        faultSent++;
        if (status === 'OK') faultOk++;
        faultLatencies.push(ms);
      }
      answered++;
      fire();
    }
  };
  fire();
  await Promise.all(Array.from({ length: inFlight }, () => worker()));
  await Promise.all(running);
  const ok = statuses.OK ?? 0;
  return {
    sent: total,
    ok,
    statuses,
    availability: ok / total,
    p99Ms: Math.round(p99(latencies)),
    maxMs: Math.round(Math.max(0, ...latencies)),
    fault: {
      sent: faultSent,
      ok: faultOk,
      availability: faultSent === 0 ? 1 : faultOk / faultSent,
      p99Ms: Math.round(p99(faultLatencies)),
      maxMs: Math.round(Math.max(0, ...faultLatencies)),
    },
    okIds,
    events,
  };
}

export interface StreamCheck {
  records: number;
  missing: bigint[];
  duplicated: bigint[];
}

/** Which OK ids are missing from `records`, which ids appear twice. */
async function tally(records: AsyncIterable<{ clientId: number; msgId: bigint }>, clientId: number, okIds: Set<bigint>): Promise<StreamCheck> {
  const seen = new Map<bigint, number>();
  let count = 0;
  for await (const r of records) {
    count++;
    if (r.clientId !== clientId) continue;
    seen.set(r.msgId, (seen.get(r.msgId) ?? 0) + 1);
  }
  const missing = [...okIds].filter((id) => !seen.has(id));
  const duplicated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  return { records: count, missing, duplicated };
}

/** Reads the whole stream back through readStream: which OK ids are missing, which ids appear twice. */
export function checkStream(servers: string[], stream: string, clientId: number, okIds: Set<bigint>): Promise<StreamCheck> {
  return tally(readStream({ servers, stream }), clientId, okIds);
}

/**
 * The stream leader's own copy, message by message (the leader answers the
 * stream's message-get API): for a cluster whose replicas disagree, where a
 * consumer could be served by either.
 */
async function* leaderRecords(servers: string[], stream: string): AsyncIterableIterator<StreamRecord> {
  const nc = await connect({ servers, timeout: 5000 });
  try {
    const jsm = await nc.jetstreamManager({ timeout: 5000 });
    const info = await jsm.streams.info(stream);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq }).catch((err: Error) => {
        if (/no message found/i.test(err.message)) return null; // deleted
        throw err;
      });
      if (m !== null) yield decodeStreamMessage(stream, BigInt(seq), m.subject, m.data);
    }
  } finally {
    await nc.close();
  }
}

/** checkStream on the stream leader's copy. */
export function checkStreamAtLeader(servers: string[], stream: string, clientId: number, okIds: Set<bigint>): Promise<StreamCheck> {
  return tally(leaderRecords(servers, stream), clientId, okIds);
}

export function describe(r: LoadReport): string {
  return (
    `sent ${r.sent}, OK ${r.ok} (${JSON.stringify(r.statuses)}), availability ${(100 * r.availability).toFixed(2)}%, ` +
    `ACK p99 ${r.p99Ms} ms, max ${r.maxMs} ms; during faults: ${r.fault.sent} sends, availability ` +
    `${(100 * r.fault.availability).toFixed(2)}%, ACK p99 ${r.fault.p99Ms} ms, max ${r.fault.maxMs} ms`
  );
}
