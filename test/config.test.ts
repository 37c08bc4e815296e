import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { ConfigError, configFromJson, DEFAULTS, resolveConfig, type ServerOptions } from '../dist/server/config';

/** Runs resolveConfig expecting a ConfigError and returns it. */
function configError(opts: unknown): ConfigError {
  try {
    resolveConfig(opts as ServerOptions);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`resolveConfig accepted ${JSON.stringify(opts)}`);
}

test('defaults match the spec', () => {
  const cfg = resolveConfig();
  assert.deepEqual(cfg, {
    host: '127.0.0.1',
    port: 9000,
    serviceThreads: Math.min(256, os.availableParallelism()),
    protocol: 'v1',
    ackMode: 'written',
    file: {
      enabled: true,
      path: 'messages.log',
      format: 'binary',
      rotateBytes: 0,
      rotateMs: 0,
      fsync: 'interval',
      fsyncIntervalMs: 1000,
      repair: false,
      retention: { maxBytes: 0, maxAgeMs: 0, maxSegments: 0, afterArchive: false },
      minFreeBytes: 64 * 1024 * 1024,
      dropCache: true,
    },
    batch: { maxMessages: 4096, maxBytes: 1048576, maxDelayMs: 0 },
    limits: {
      maxMessageBytes: 1048576,
      maxConnections: 10000,
      idleTimeoutMs: 0,
      handshakeTimeoutMs: 10000,
      frameTimeoutMs: 30000,
      maxQueueBytes: 67108864,
      maxInflightBytesPerConnection: 8388608,
      maxPartialFrameBytes: 67108864,
    },
    jetstream: null,
    tls: null,
    auth: null,
  });
  assert.deepEqual(resolveConfig({}), cfg);
  assert.deepEqual(DEFAULTS, cfg);
});

test('DEFAULTS is frozen and resolveConfig returns a fresh copy', () => {
  assert.ok(Object.isFrozen(DEFAULTS) && Object.isFrozen(DEFAULTS.limits));
  const cfg = resolveConfig();
  cfg.limits.maxConnections = 1;
  assert.equal(resolveConfig().limits.maxConnections, 10000);
});

test('given values are kept, missing ones defaulted, sections merged', () => {
  const cfg = resolveConfig({ port: 0, ackMode: 'durable', file: { path: '/tmp/x.log', fsync: 'batch' }, limits: { maxConnections: 5 } });
  assert.equal(cfg.port, 0);
  assert.equal(cfg.ackMode, 'durable');
  assert.equal(cfg.file.path, '/tmp/x.log');
  assert.equal(cfg.file.fsync, 'batch');
  assert.equal(cfg.file.format, 'binary');
  assert.equal(cfg.limits.maxConnections, 5);
  assert.equal(cfg.limits.maxMessageBytes, 1048576);
});

test('an option explicitly set to undefined means "use the default"', () => {
  assert.equal(resolveConfig({ port: undefined, file: { path: undefined } }).port, 9000);
});

// One case per kind of check: type, integer-ness, each range end, enum, special forms.
const invalid: [string, ServerOptions | Record<string, unknown>, unknown, RegExp][] = [
  ['port', { port: 'x' }, 'x', /integer 0\.\.65535/],
  ['port', { port: 65536 }, 65536, /integer 0\.\.65535/],
  ['port', { port: 80.5 }, 80.5, /integer/],
  ['port', { port: -1 }, -1, /integer 0\.\.65535/],
  ['port', { port: Number.NaN }, Number.NaN, /integer/],
  ['host', { host: '' }, '', /non-empty string/],
  ['host', { host: 42 }, 42, /non-empty string/],
  ['serviceThreads', { serviceThreads: 0 }, 0, /integer 1\.\.256/],
  ['serviceThreads', { serviceThreads: 257 }, 257, /integer 1\.\.256/],
  ['protocol', { protocol: 'v2' }, 'v2', /one of 'v1', 'legacy'/],
  ['ackMode', { ackMode: 'quorum' }, 'quorum', /one of 'received', 'written', 'durable', 'replicated'/],
  ['file.format', { file: { format: 'csv' } }, 'csv', /'binary', 'text'/],
  ['file.fsync', { file: { fsync: true } }, true, /'never', 'interval', 'batch'/],
  ['file.fsyncIntervalMs', { file: { fsyncIntervalMs: 0 } }, 0, /integer 1\.\.3600000/],
  ['file.rotateBytes', { file: { rotateBytes: 100 } }, 100, /0 \(off\) or integer 4096\.\.1125899906842624/],
  ['file.rotateBytes', { file: { rotateBytes: 2 ** 50 + 1 } }, 2 ** 50 + 1, /4096\.\.1125899906842624/],
  ['file.repair', { file: { repair: 'yes' } }, 'yes', /true or false/],
  ['file.path', { file: { path: '' } }, '', /non-empty string/],
  ['batch.maxMessages', { batch: { maxMessages: 0 } }, 0, /integer 1\.\.1000000/],
  ['batch.maxBytes', { batch: { maxBytes: 4095 } }, 4095, /integer 4096\.\.268435456/],
  ['batch.maxDelayMs', { batch: { maxDelayMs: 10001 } }, 10001, /integer 0\.\.10000/],
  ['limits.maxMessageBytes', { limits: { maxMessageBytes: 64 * 1024 * 1024 + 1 } }, 67108865, /integer 0\.\.67108864/],
  ['limits.maxConnections', { limits: { maxConnections: 0 } }, 0, /integer 1\.\.1000000/],
  ['limits.idleTimeoutMs', { limits: { idleTimeoutMs: 86400001 } }, 86400001, /integer 0\.\.86400000/],
  ['limits.handshakeTimeoutMs', { limits: { handshakeTimeoutMs: -5 } }, -5, /integer 0\.\.86400000/],
  ['limits.frameTimeoutMs', { limits: { frameTimeoutMs: '30s' } }, '30s', /integer 0\.\.86400000/],
  ['limits.maxQueueBytes', { limits: { maxQueueBytes: 1024 } }, 1024, /integer 1048576\.\.17179869184/],
  ['file', { file: 'm.log' }, 'm.log', /object with keys enabled, path, format/],
  ['limits', { limits: null }, null, /object with keys maxMessageBytes/],
];

for (const [field, opts, value, allowed] of invalid) {
  test(`invalid ${field} = ${String(value)} is reported with field, value and allowed`, () => {
    const err = configError(opts);
    assert.equal(err.issues.length, 1, err.message);
    const [issue] = err.issues;
    assert.equal(issue.field, field);
    assert.deepEqual(issue.value, value);
    assert.match(issue.allowed, allowed);
    assert.ok(err.message.startsWith(`invalid config: ${field} = `), err.message);
    assert.match(err.message, allowed);
  });
}

test('boundary values are accepted', () => {
  const cfg = resolveConfig({
    port: 65535,
    serviceThreads: 256,
    file: { rotateBytes: 4096, fsyncIntervalMs: 3600000 },
    batch: { maxMessages: 1000000, maxBytes: 256 * 1024 * 1024, maxDelayMs: 10000 },
    limits: { maxMessageBytes: 0, maxConnections: 1, idleTimeoutMs: 86400000, maxQueueBytes: 16 * 1024 ** 3 },
  });
  assert.equal(cfg.file.rotateBytes, 4096);
  assert.equal(cfg.limits.maxQueueBytes, 16 * 1024 ** 3);
});

test('every issue is collected into one error, in a message naming each', () => {
  const err = configError({ port: 'x', limits: { maxMessageBytes: -1 }, ackMode: 'sometimes' });
  assert.deepEqual(
    err.issues.map((i) => i.field).sort(),
    ['ackMode', 'limits.maxMessageBytes', 'port'],
  );
  assert.match(err.message, /port = 'x' \(allowed: integer 0\.\.65535\)/);
  assert.match(err.message, /limits\.maxMessageBytes = -1 \(allowed: integer 0\.\.67108864\)/);
  assert.match(err.message, /ackMode = 'sometimes' \(allowed: one of 'received', 'written', 'durable', 'replicated'\)/);
  assert.equal(err.message.split('; ').length, 3);
});

test('unknown keys are issues, at the top level and inside sections', () => {
  const err = configError({ prot: 9000, file: { pth: 'x' }, limits: { maxMessageBytes: 10, bogus: 1 } });
  const fields = err.issues.map((i) => i.field).sort();
  assert.deepEqual(fields, ['file.pth', 'limits.bogus', 'prot']);
  const prot = err.issues.find((i) => i.field === 'prot');
  assert.match(prot?.allowed ?? '', /no such option \(known: host, port, .*limits, jetstream, tls, auth\)/);
  assert.match(err.message, /file\.pth = 'x' \(allowed: no such option \(known: enabled, path, format/);
});

test('maxQueueBytes must hold one maximum-size message when set explicitly', () => {
  const err = configError({ limits: { maxMessageBytes: 2 * 1024 * 1024, maxQueueBytes: 2 * 1024 * 1024 } });
  assert.equal(err.issues.length, 1);
  assert.equal(err.issues[0].field, 'limits.maxQueueBytes');
  assert.match(err.issues[0].allowed, />= limits\.maxMessageBytes \+ 1024 = 2098176/);
  // Exactly enough is fine.
  assert.equal(
    resolveConfig({ limits: { maxMessageBytes: 2 * 1024 * 1024, maxQueueBytes: 2 * 1024 * 1024 + 1024 } }).limits.maxQueueBytes,
    2098176,
  );
});

test('an unset maxQueueBytes grows to fit a large maxMessageBytes instead of failing', () => {
  const cfg = resolveConfig({ limits: { maxMessageBytes: 64 * 1024 * 1024 } });
  assert.equal(cfg.limits.maxQueueBytes, 64 * 1024 * 1024 + 1024);
});

test('non-object options are rejected', () => {
  assert.equal(configError(42).issues[0].field, '(options)');
  assert.equal(configError([]).issues[0].field, '(options)');
});

test('configFromJson parses an options object, to be validated by resolveConfig', () => {
  const opts = configFromJson('{"port": 9100, "file": {"path": "a.log"}, "limits": {"maxConnections": 3}}', 'srv.json');
  const cfg = resolveConfig(opts);
  assert.equal(cfg.port, 9100);
  assert.equal(cfg.file.path, 'a.log');
  assert.equal(cfg.limits.maxConnections, 3);
  // Unknown keys from a file are caught by resolveConfig like any others.
  assert.deepEqual(configError(configFromJson('{"prt": 1}', 'x.json')).issues.map((i) => i.field), ['prt']);
});

test('configFromJson names the file on a syntax error or a non-object', () => {
  assert.throws(() => configFromJson('{"port": 9000,', '/etc/msgserver.json'), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /^invalid config file \/etc\/msgserver\.json: /);
    return true;
  });
  assert.throws(() => configFromJson('[1, 2]', 'list.json'), /invalid config file list\.json: expected a JSON object of options, got an array/);
  assert.throws(() => configFromJson('null', 'n.json'), /invalid config file n\.json: expected a JSON object/);
});

// ---- the jetstream section ----------------------------------------------------

test('jetstream: off by default; servers normalised; section defaults filled in', () => {
  assert.equal(resolveConfig().jetstream, null);
  const cfg = resolveConfig({ ackMode: 'replicated', jetstream: { servers: 'nats://a:4222, 127.0.0.1:4223' } });
  assert.deepEqual(cfg.jetstream, {
    servers: ['nats://a:4222', 'nats://127.0.0.1:4223'],
    stream: 'msgs',
    subjectPrefix: 'msgs',
    replicas: 1,
    createStream: true,
    ackTimeoutMs: 5000,
    maxPending: 65536,
    retryMs: 15000,
    whileNotReady: 'hold',
    tls: { ca: '', cert: '', key: '' },
    user: '',
    password: '',
    token: '',
    nkey: { publicKey: '', seedFile: '' },
    credsFile: '',
  });
  // A record must fit NATS's 1 MiB max_payload: the default largest message shrinks to fit.
  assert.equal(cfg.limits.maxMessageBytes, 1024 * 1024 - 1024);
  assert.equal(resolveConfig({ jetstream: { servers: ['nats://x:1'] }, file: { enabled: false } }).file.enabled, false);
});

const jsInvalid: [string, Record<string, unknown>, RegExp][] = [
  ['jetstream.servers', { jetstream: { servers: [] } }, /one or more NATS URLs/],
  ['jetstream.servers', { jetstream: { servers: 'http://x:4222' } }, /nats:\/\/host:port/],
  ['jetstream.servers', { jetstream: { servers: ['nats://x:4222/path'] } }, /NATS URLs/],
  ['jetstream.servers', { jetstream: { stream: 'S' } }, /NATS URLs/],
  ['jetstream.stream', { jetstream: { servers: 'x:1', stream: 'a.b' } }, /letters, digits, _ and -/],
  ['jetstream.subjectPrefix', { jetstream: { servers: 'x:1', subjectPrefix: 'a.*' } }, /no wildcards/],
  ['jetstream.subjectPrefix', { jetstream: { servers: 'x:1', subjectPrefix: '$JS.x' } }, /not starting with '\$'/],
  ['jetstream.subjectPrefix', { jetstream: { servers: 'x:1', subjectPrefix: 'a..b' } }, /dot-separated tokens/],
  ['jetstream.replicas', { jetstream: { servers: 'x:1', replicas: 6 } }, /integer 1\.\.5/],
  ['jetstream.ackTimeoutMs', { jetstream: { servers: 'x:1', ackTimeoutMs: 10 } }, /integer 100\.\./],
  ['jetstream.bogus', { jetstream: { servers: 'x:1', bogus: 1 } }, /no such option \(known: servers, stream/],
  ['jetstream', { jetstream: 'nats://x:1' }, /null or an object/],
  ['jetstream.retryMs', { jetstream: { servers: 'x:1', retryMs: -1 } }, /integer 0\.\.300000/],
  ['jetstream.whileNotReady', { jetstream: { servers: 'x:1', whileNotReady: 'wait' } }, /'hold', 'refuse'|hold.*refuse/],
  ['jetstream.tls', { jetstream: { servers: 'x:1', tls: { cert: 'c.pem' } } }, /cert and key together/],
  ['jetstream.tls', { jetstream: { servers: 'x:1', tls: { ca: 1 } } }, /of strings/],
  ['jetstream.nkey', { jetstream: { servers: 'x:1', nkey: { publicKey: 'U' } } }, /seedFile required|publicKey, seedFile required/],
  ['jetstream.password', { jetstream: { servers: 'x:1', password: 'p' } }, /only with jetstream\.user/],
  ['jetstream', { jetstream: { servers: 'x:1', user: 'u', token: 't' } }, /at most one kind of credentials/],
  ['ackMode', { ackMode: 'replicated' }, /'replicated' only with a jetstream section/],
  ['file.enabled', { file: { enabled: false } }, /false only with a jetstream section/],
  ['ackMode', { ackMode: 'durable', file: { enabled: false }, jetstream: { servers: 'x:1' } }, /'durable' only with file\.enabled/],
  ['limits.maxMessageBytes', { limits: { maxMessageBytes: 1024 * 1024 }, jetstream: { servers: 'x:1' } }, /0\.\.1047552 with jetstream/],
];
test('jetstream config: a secret in an issue is redacted, never echoed', () => {
  const err = configError({ jetstream: { servers: 'x:1', password: 'hunter2-secret' } });
  assert.ok(!err.message.includes('hunter2-secret'), err.message);
  const bad = configError({ jetstream: { servers: 'x:1', token: 42 } });
  assert.match(bad.message, /jetstream\.token = .*redacted/);
});

test('jetstream config: tls:// servers are kept', () => {
  assert.deepEqual(resolveConfig({ jetstream: { servers: 'tls://n1:4222' } }).jetstream!.servers, ['tls://n1:4222']);
});

for (const [field, opts, allowed] of jsInvalid) {
  test(`jetstream config: ${field} in ${JSON.stringify(opts)} is reported by field`, () => {
    const err = configError(opts);
    const issue = err.issues.find((i) => i.field === field);
    assert.ok(issue, `no issue for ${field}: ${err.message}`);
    assert.match(issue.allowed, allowed);
  });
}
