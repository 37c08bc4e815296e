// The auth section's principals: client ids that several principals may use
// are named (allowed, for token rotation) and warned about at listen().
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { MessageServer } from '../dist/index';
import { sharedClientIds, type NativePrincipal } from '../dist/server/credentials';
import { tempDir } from './helpers';

const p = (name: string, ...ranges: [number, number][]): NativePrincipal => ({
  name,
  token: true,
  sha256: null,
  clientIds: ranges.flat(),
});

test('sharedClientIds names each pair of principals and the ids they share', () => {
  assert.deepEqual(sharedClientIds([p('a', [1, 10]), p('b', [20, 30])]), []);
  assert.deepEqual(sharedClientIds([p('a', [1, 10], [11, 19])]), [], 'one principal never overlaps itself');
  assert.deepEqual(sharedClientIds([p('a', [1, 10]), p('b', [10, 30])]), ["'a' and 'b' share client ids 10"]);
  assert.deepEqual(sharedClientIds([p('a', [100, 199]), p('b', [150, 300]), p('c', [0, 1000])]), [
    "'c' and 'a' share client ids 100..199",
    "'c' and 'b' share client ids 150..300",
    "'a' and 'b' share client ids 150..199",
  ]);
});

test('listen() warns when a token and a certificate principal share client ids, and still serves', async () => {
  const dir = tempDir('msgserver-credentials-');
  const tokens = path.join(dir, 'tokens.json');
  const sha256 = crypto.createHash('sha256').update('s3cret-token-value').digest('hex');
  fs.writeFileSync(tokens, JSON.stringify([{ name: 'app', sha256, clientIds: [[100, 199]] }]));
  const server = new MessageServer({
    port: 0,
    file: { path: path.join(dir, 'm.log') },
    auth: { tokensFile: tokens, principals: { 'client-a': [[150, 160]] }, allowPlaintext: true },
  });
  const warnings: string[] = [];
  server.on('log', (e: { level: string; message: string }) => {
    if (e.level === 'warn') warnings.push(e.message);
  });
  try {
    await server.listen();
    const shared = warnings.filter((w) => w.includes('share client ids'));
    assert.equal(shared.length, 1, warnings.join('\n'));
    assert.match(shared[0], /'app' and 'client-a' share client ids 150\.\.160/);
    assert.ok(!shared[0].includes('s3cret'), 'no secret in the warning');
  } finally {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
