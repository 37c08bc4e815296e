// Smaller recovery and lifecycle cases: a partial last line of a text log, age
// rotation (rotateMs), and closing through an AbortSignal.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

import { LegacyClient, MessageClient, MessageServer, readLog, verifyLog } from '../dist/index';
import { tempDir } from './helpers';

test('text format: a partial last line is cut on start and reported', async () => {
  const dir = tempDir();
  const file = path.join(dir, 'legacy.txt');
  fs.writeFileSync(file, '1 1 client_1 complete line\n1 2 client_1 cut in the mid');
  const server = new MessageServer({ port: 0, serviceThreads: 1, protocol: 'legacy', file: { path: file, format: 'text' } });
  const recovered = new Promise<{ offset: number; bytesCut: number }>((r) => server.once('recovered', r));
  const { port } = await server.listen();
  const info = await recovered;
  assert.deepEqual([info.offset, info.bytesCut], [27, 27]);
  const c = await LegacyClient.connect({ port });
  await c.send(1, 3, 'client_1', 'after recovery');
  await c.close();
  await server.close();
  assert.equal(fs.readFileSync(file, 'utf8'), '1 1 client_1 complete line\n1 3 client_1 after recovery\n');
  assert.equal((await verifyLog(file)).ok, true);
});

test('rotateMs: a segment that holds records is closed once it is old enough', async (t) => {
  const dir = path.join(tempDir(), 'aged');
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: dir, rotateMs: 200 } });
  const rotated: string[] = [];
  let onRotate: (() => void) | null = null;
  server.on('rotate', (r) => {
    rotated.push(r.closed);
    onRotate?.();
  });
  const { port } = await server.listen();
  t.after(() => server.close());
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
  await c.send('first segment');
  await new Promise<void>((r) => (onRotate = r)); // the writer's own timer closes it
  await c.send('second segment');
  await c.close();
  await server.close();
  assert.equal(rotated.length >= 1, true);
  const segments = fs.readdirSync(dir).sort();
  assert.equal(segments[0], '00000000000000000001.log');
  assert.ok(segments.includes('00000000000000000002.log'), segments.join());
  const all = [];
  for await (const r of readLog(dir)) all.push(r.payload.toString());
  assert.deepEqual(all, ['first segment', 'second segment']);
});

test('an AbortSignal closes the server', async () => {
  const dir = tempDir();
  const ac = new AbortController();
  const server = new MessageServer({ port: 0, serviceThreads: 1, file: { path: path.join(dir, 'a.log') }, signal: ac.signal });
  const { port } = await server.listen();
  const c = await MessageClient.connect({ firstMsgId: 1, port, clientId: 1 });
  await c.send('before abort');
  const closed = new Promise((r) => server.once('close', r));
  ac.abort();
  await closed;
  assert.equal(server.listening, false);
  await c.close();
  assert.equal((await verifyLog(path.join(dir, 'a.log'))).records, 1);
});
