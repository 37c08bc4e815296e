#!/usr/bin/env node
// The Node baseline for the benchmarks: what a Node user would write instead
// of msgserver. An idiomatic pure `net` server that speaks the v1 or the
// legacy protocol, appends every message to a file through an
// fs.WriteStream, ACKs every message, and pauses its sockets while the
// stream is backed up (write() returned false) until 'drain'.
//
//   node bench/node-baseline.js --port 0 --protocol v1|legacy --file /tmp/x.log
//        [--ack-mode received|written|durable] [--host 127.0.0.1] [--max-connections n]
//
// ACKs: v1 sends one ACK frame per 'data' event covering the messages it
// completed (the same coalescing msgserver does); legacy sends "ack" per
// message, one socket.write per 'data' event. --ack-mode received ACKs once
// the messages are handed to the stream; written ACKs in the stream's write
// callback; durable after an fdatasync that follows it (one fdatasync at a
// time, covering every write finished before it: group commit).
// v1 records: u32 length, u32 client id, u64 msg id, u8 name length, name,
// payload. Legacy: the original's text line "<client_id> <msg_id> <name> <message>\n".
// The stream gets a 1 MiB highWaterMark (the default 16 KiB would pause the
// sockets far more often; a user tuning for throughput would raise it).
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const { parseArgs } = require('node:util');

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    protocol: { type: 'string', default: 'v1' },
    file: { type: 'string', default: 'node-baseline.log' },
    'ack-mode': { type: 'string', default: 'received' },
    'max-connections': { type: 'string', default: '0' },
    'max-message-bytes': { type: 'string', default: String(1024 * 1024) },
  },
});
const legacy = values.protocol === 'legacy';
const ackMode = values['ack-mode'];
if (!['received', 'written', 'durable'].includes(ackMode)) throw new Error(`bad --ack-mode ${ackMode}`);
const maxMessage = Number(values['max-message-bytes']);
const LEGACY_FRAME = 1160;

const out = fs.createWriteStream(values.file, { flags: 'a', highWaterMark: 1024 * 1024 });
out.on('error', (err) => {
  console.error(`node-baseline: write error: ${err.message}`);
  process.exit(1);
});

// Back-pressure: sockets that wrote while the stream was full wait for 'drain'.
const paused = new Set();
out.on('drain', () => {
  for (const s of paused) s.resume();
  paused.clear();
});
function append(sock, record, cb) {
  if (!out.write(record, cb) && !paused.has(sock)) {
    paused.add(sock);
    sock.pause();
  }
}

// Group commit for --ack-mode durable.
let syncing = false;
let syncWaiters = [];
function afterSync(fn) {
  syncWaiters.push(fn);
  if (!syncing) startSync();
}
function startSync() {
  const waiters = syncWaiters;
  syncWaiters = [];
  syncing = true;
  fs.fdatasync(out.fd, (err) => {
    if (err) throw err;
    for (const fn of waiters) fn();
    syncing = false;
    if (syncWaiters.length) startSync();
  });
}

function settle(sock, reply, lastRecordDone) {
  // Called with the reply bytes once the messages are in the state the mode promises.
  const send = () => {
    if (!sock.destroyed) sock.write(reply);
  };
  if (ackMode === 'received') return send();
  lastRecordDone(ackMode === 'written' ? send : () => afterSync(send));
}

const ACKS = Buffer.from('ack'.repeat(4096));

function v1Connection(sock) {
  let buf = Buffer.alloc(0);
  let clientId = -1;
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let off = 0;
    let head = null;
    if (clientId < 0) {
      if (buf.length < 12) return;
      if (buf.toString('latin1', 0, 4) !== 'MSGS' || buf[4] !== 1) return sock.destroy();
      clientId = buf.readUInt32BE(8);
      head = Buffer.from([0x4d, 0x53, 0x47, 0x53, 1, 0, 0, 0, 0, 0, 0, 0]);
      head.writeUInt32BE(maxMessage, 8);
      off = 12;
    }
    let count = 0;
    let lastId = 0n;
    let done = null;
    let prev = null; // the last record is written after the loop, with the ACK's callback
    while (buf.length - off >= 4) {
      const len = buf.readUInt32BE(off);
      if (len < 10 || len > 10 + 255 + maxMessage) return sock.destroy();
      if (buf.length - off < 4 + len) break;
      const nameLen = buf[off + 5];
      const msgId = buf.readBigUInt64BE(off + 6);
      const body = buf.subarray(off + 14, off + 4 + len); // name + payload
      const rec = Buffer.allocUnsafe(17 + body.length);
      rec.writeUInt32BE(13 + body.length, 0);
      rec.writeUInt32BE(clientId, 4);
      rec.writeBigUInt64BE(msgId, 8);
      rec[16] = nameLen;
      body.copy(rec, 17);
      if (prev) append(sock, prev);
      prev = rec;
      count++;
      lastId = msgId;
      off += 4 + len;
    }
    buf = off === buf.length ? Buffer.alloc(0) : buf.subarray(off);
    if (prev) {
      if (ackMode === 'received') append(sock, prev);
      else append(sock, prev, (err) => {
        if (err) throw err;
        done();
      });
    }
    if (count === 0) {
      if (head) sock.write(head);
      return;
    }
    const ack = Buffer.allocUnsafe(20);
    ack.writeUInt32BE(16, 0);
    ack[4] = 0x81;
    ack[5] = 0;
    ack.writeUInt16BE(0, 6);
    ack.writeUInt32BE(count, 8);
    ack.writeBigUInt64BE(lastId, 12);
    const reply = head ? Buffer.concat([head, ack]) : ack;
    settle(sock, reply, (fn) => {
      done = fn;
    });
  });
}

function cstring(buf, start, end) {
  const z = buf.indexOf(0, start);
  return buf.toString('latin1', start, z < 0 || z > end ? end : z);
}

function legacyConnection(sock) {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    const n = Math.floor(buf.length / LEGACY_FRAME);
    if (n === 0) return;
    let done = null;
    for (let i = 0; i < n; i++) {
      const o = i * LEGACY_FRAME;
      const clientId = buf.readUInt32BE(o);
      const msgId = buf.readUInt32BE(o + 4);
      const name = cstring(buf, o + 8, o + 136);
      const text = cstring(buf, o + 136, o + LEGACY_FRAME);
      const line = `${clientId} ${msgId} ${name} ${text}\n`;
      if (i === n - 1 && ackMode !== 'received') {
        append(sock, line, (err) => {
          if (err) throw err;
          done();
        });
      } else {
        append(sock, line);
      }
    }
    buf = buf.subarray(n * LEGACY_FRAME);
    const reply = n * 3 <= ACKS.length ? ACKS.subarray(0, n * 3) : Buffer.from('ack'.repeat(n));
    settle(sock, reply, (fn) => {
      done = fn;
    });
  });
}

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.setNoDelay(true);
  sock.on('error', () => {});
  sock.on('close', () => paused.delete(sock));
  if (legacy) legacyConnection(sock);
  else v1Connection(sock);
});
const maxConns = Number(values['max-connections']);
if (maxConns > 0) server.maxConnections = maxConns;
server.listen({ host: values.host, port: Number(values.port), backlog: 65535 }, () => {
  const a = server.address();
  process.stdout.write(`node-baseline listening on ${a.address}:${a.port} (${values.protocol}, ack ${ackMode})\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    out.end(() => process.exit(0));
  });
}
