// Self-test for test/support/nats-cluster.ts: a 3-node JetStream cluster
// survives a SIGKILLed node and takes it back; HAProxy round-robins TCP
// connections over two in-process echo servers and stops sending new ones to
// a backend whose listener closed once its health check notices.
//
// Skips when nats-server / haproxy are not installed, unless
// MSGS_REQUIRE_NATS=1 (then a missing binary fails the test).
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, describe, test } from 'node:test';

import { haproxyPath, natsServerPath, startHaproxy, startNatsCluster, type Haproxy, type NatsCluster } from './support/nats-cluster';

const REQUIRE = process.env.MSGS_REQUIRE_NATS === '1';

function missing(what: string, found: string | null): string | false {
  if (found) return false;
  return `${what} not installed (set MSGS_REQUIRE_NATS=1 to make this a failure)`;
}

const natsSkip = REQUIRE ? false : missing('nats-server', natsServerPath());
const haproxySkip = REQUIRE ? false : missing('haproxy', haproxyPath());

const log = (msg: string): void => {
  if (process.env.MSGS_TEST_VERBOSE === '1') console.log(`# ${msg}`);
};

async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    log(`${what}: ${Math.round(performance.now() - t0)} ms`);
  }
}

describe('NATS cluster support', { skip: natsSkip, timeout: 60_000 }, () => {
  let cluster: NatsCluster | undefined;
  after(async () => {
    await cluster?.stop();
  });

  test('binary is there', () => {
    assert.ok(natsServerPath(), 'nats-server not found but MSGS_REQUIRE_NATS=1');
  });

  test('3 nodes start healthy with a meta leader', async () => {
    cluster = await timed('cluster start', () => startNatsCluster({ nodes: 3, timeoutMs: 20_000 }));
    assert.equal(cluster.urls.length, 3);
    for (const u of cluster.urls) assert.match(u, /^nats:\/\/127\.0\.0\.1:\d+$/);
    await cluster.waitHealthy(5000);
    const leader = await cluster.metaLeader();
    assert.ok(leader && /^n[0-2]$/.test(leader), `meta leader ${leader}`);
    assert.match(cluster.logs(0), /Server is ready/);
  });

  test('killing node 1 leaves the other two healthy with a meta leader', async () => {
    assert.ok(cluster, 'cluster started');
    const c = cluster;
    await timed('kill n1', () => c.kill(1));
    assert.equal(c.running(1), false);
    await timed('survivors healthy (incl. re-election if n1 led)', () => c.waitHealthy(20_000));
    const leader = await c.metaLeader();
    assert.ok(leader === 'n0' || leader === 'n2', `meta leader after kill: ${leader}\n${c.logs(0)}`);
  });

  test('restarting node 1 rejoins it', async () => {
    assert.ok(cluster, 'cluster started');
    const c = cluster;
    await timed('restart n1', () => c.restart(1));
    assert.equal(c.running(1), true);
    // restart() already waited; a second check must pass at once.
    await c.waitHealthy(2000);
    const res = await fetch(`http://127.0.0.1:${c.monitorPorts[1]}/routez`);
    const routez = (await res.json()) as { num_routes: number };
    assert.ok(routez.num_routes >= 2, `n1 routes after restart: ${routez.num_routes}`);
    assert.ok(await c.metaLeader(), 'a meta leader after restart');
  });
});

interface Echo {
  name: string;
  server: net.Server;
  port: number;
  seen: string[];
  sockets: Set<net.Socket>;
}

async function echoServer(name: string): Promise<Echo> {
  const e: Echo = { name, server: net.createServer(), port: 0, seen: [], sockets: new Set() };
  e.server.on('connection', (sock) => {
    e.sockets.add(sock);
    sock.on('close', () => e.sockets.delete(sock));
    sock.on('error', () => {}); // health checks connect and reset
    sock.on('data', (d) => {
      e.seen.push(d.toString());
      sock.write(d);
    });
  });
  await new Promise<void>((resolve) => e.server.listen(0, '127.0.0.1', resolve));
  e.port = (e.server.address() as net.AddressInfo).port;
  return e;
}

/** Connect through the proxy, send a token, wait for the echo; bounded. */
function roundTrip(port: number, token: string, timeoutMs = 5000): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no echo for ${token} within ${timeoutMs} ms (got ${JSON.stringify(got)})`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(token));
    sock.on('data', (d) => {
      got += d.toString();
      if (got === token) {
        clearTimeout(timer);
        sock.destroy();
        resolve(performance.now() - t0);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (got !== token) reject(new Error(`connection for ${token} closed before the echo (got ${JSON.stringify(got)})`));
    });
  });
}

const whoSaw = (echoes: Echo[], token: string): string[] => echoes.filter((e) => e.seen.includes(token)).map((e) => e.name);

describe('HAProxy support', { skip: haproxySkip, timeout: 30_000 }, () => {
  let proxy: Haproxy | undefined;
  const echoes: Echo[] = [];
  after(async () => {
    await proxy?.stop();
    for (const e of echoes) {
      for (const s of e.sockets) s.destroy();
      await new Promise<void>((r) => e.server.close(() => r()));
    }
  });

  test('binary is there', () => {
    assert.ok(haproxyPath(), 'haproxy not found but MSGS_REQUIRE_NATS=1');
  });

  test('round-robins over two echo servers, then fails over to the one left', async () => {
    echoes.push(await echoServer('A'), await echoServer('B'));
    const [a, b] = echoes;
    const p = await timed('haproxy start', () => startHaproxy({ backends: [{ port: a.port }, { port: b.port }], checkIntervalMs: 200 }));
    proxy = p;
    assert.match(p.config, /balance roundrobin/);
    assert.match(p.config, new RegExp(`server s1 127\\.0\\.0\\.1:${b.port} check inter 200ms fall 2 rise 2`));
    log(`haproxy.cfg:\n${p.config}`);

    const hits: Record<string, number> = { A: 0, B: 0 };
    for (let i = 0; i < 6; i++) {
      const token = `rr-${i}`;
      await roundTrip(p.port, token);
      const who = whoSaw(echoes, token);
      assert.equal(who.length, 1, `${token} reached ${who}`);
      hits[who[0]]++;
    }
    assert.ok(hits.A >= 2 && hits.B >= 2, `round robin over 6 connections: ${JSON.stringify(hits)}`);

    // Close B's listener (existing sockets aside): health checks start failing.
    await timed('B close', () => new Promise<void>((resolve) => {
      b.server.close(() => resolve());
      for (const s of b.sockets) s.destroy();
    }));
    const t0 = performance.now();
    const deadline = Date.now() + 10_000;
    let status: Record<string, string> = {};
    for (;;) {
      status = await p.serverStatus();
      if (status.s1?.startsWith('DOWN')) break;
      if (Date.now() >= deadline) assert.fail(`haproxy never marked s1 DOWN: ${JSON.stringify(status)}\n${p.logs()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    log(`haproxy noticed B down after ${Math.round(performance.now() - t0)} ms: ${JSON.stringify(status)}`);
    assert.ok(status.s0?.startsWith('UP'), `s0 still UP: ${JSON.stringify(status)}`);

    for (let i = 0; i < 6; i++) {
      const token = `after-${i}`;
      const ms = await roundTrip(p.port, token, 3000);
      assert.deepEqual(whoSaw(echoes, token), ['A'], `${token} after B went down`);
      // No connect retries/redispatch delay: the DOWN server is skipped outright.
      assert.ok(ms < 900, `${token} took ${Math.round(ms)} ms`);
    }
  });
});
