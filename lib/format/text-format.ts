// The text log format (file.format 'text'): the original server's lines
//   <client_id> <msg_id> <name> <message>\n
// escaped so that one message is one line and every byte reads back exactly
// (same rules as native/record.cc encode_text): backslash -> \\, newline ->
// \n, CR -> \r, tab -> \t, NUL -> \0, other bytes < 0x20 and 0x7f -> \xHH;
// in the name also space -> \s (so the first three spaces split the fields).

const BACKSLASH = 0x5c;

export interface TextLine {
  clientId: number;
  msgId: bigint;
  name: Buffer;
  payload: Buffer;
}

export function escapeText(bytes: Uint8Array, isName: boolean): Buffer {
  const out: number[] = [];
  for (const c of bytes) {
    const e = c === BACKSLASH ? '\\' : c === 0x0a ? 'n' : c === 0x0d ? 'r' : c === 0x09 ? 't' : c === 0 ? '0' : c === 0x20 && isName ? 's' : '';
    if (e) out.push(BACKSLASH, e.charCodeAt(0));
    else if (c < 0x20 || c === 0x7f) out.push(BACKSLASH, 0x78, ...Buffer.from(c.toString(16).padStart(2, '0'), 'latin1'));
    else out.push(c);
  }
  return Buffer.from(out);
}

export function encodeTextLine(l: TextLine): Buffer {
  return Buffer.concat([
    Buffer.from(`${l.clientId} ${l.msgId} `, 'latin1'),
    escapeText(l.name, true),
    Buffer.from(' '),
    escapeText(l.payload, false),
    Buffer.from('\n'),
  ]);
}

/** Undoes escapeText; throws on an escape it does not know. */
export function unescapeText(b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c !== BACKSLASH) {
      out[n++] = c;
      continue;
    }
    const e = String.fromCharCode(b[++i] ?? 0);
    const simple: Record<string, number> = { '\\': BACKSLASH, n: 0x0a, r: 0x0d, t: 0x09, '0': 0, s: 0x20 };
    if (e in simple) {
      out[n++] = simple[e];
    } else if (e === 'x' && i + 2 < b.length + 1) {
      const hex = Buffer.from(b.subarray(i + 1, i + 3)).toString('latin1');
      if (!/^[0-9a-f]{2}$/.test(hex)) throw new Error(`bad escape \\x${hex}`);
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      throw new Error(`bad escape \\${e}`);
    }
  }
  return out.subarray(0, n);
}

/** Parses one line (without its newline). Throws with a reason when it is not a text record. */
export function parseTextLine(line: Uint8Array): TextLine {
  const sp1 = line.indexOf(0x20);
  const sp2 = sp1 < 0 ? -1 : line.indexOf(0x20, sp1 + 1);
  const sp3 = sp2 < 0 ? -1 : line.indexOf(0x20, sp2 + 1);
  if (sp3 < 0) throw new Error('fewer than four fields');
  const id = Buffer.from(line.subarray(0, sp1)).toString('latin1');
  const msg = Buffer.from(line.subarray(sp1 + 1, sp2)).toString('latin1');
  if (!/^\d{1,10}$/.test(id) || Number(id) > 0xffffffff) throw new Error(`bad client id "${id}"`);
  if (!/^\d{1,20}$/.test(msg) || BigInt(msg) > 0xffffffffffffffffn) throw new Error(`bad message id "${msg}"`);
  return {
    clientId: Number(id),
    msgId: BigInt(msg),
    name: unescapeText(line.subarray(sp2 + 1, sp3)),
    payload: unescapeText(line.subarray(sp3 + 1)),
  };
}
