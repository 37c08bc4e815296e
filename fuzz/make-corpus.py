#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (fuzz/corpus/<name>/) and the known-bug
reproducers (fuzz/regressions/<name>/).

Built from the golden vectors in test/vectors/*.txt plus hand-made near-valid
inputs, laid out the way each harness reads its input (see the header comment
of fuzz/fuzz_<name>.cc). Deterministic; rewrites fuzz/corpus/ from scratch:

    python3 fuzz/make-corpus.py

Regressions are only ever added (an existing file is left alone), since they
stay after the bug is fixed.
"""
import hashlib
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VECTORS = os.path.join(ROOT, "test", "vectors")
U64_MAX = 0xFFFFFFFFFFFFFFFF


def crc32c(data, crc=0):
    c = crc ^ 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def vectors(fname):
    """Yields (kind, fields) from a golden-vector file."""
    with open(os.path.join(VECTORS, fname)) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            kind, *rest = line.split(" ")
            fields = dict(kv.split("=", 1) for kv in rest)
            yield kind, fields


def vec_hex(fname, kind):
    return [bytes.fromhex(f["hex"]) for k, f in vectors(fname) if k == kind]


# --- wire protocol -------------------------------------------------------------------------

def hello(client_id=7):
    return b"MSGS" + struct.pack(">BBHI", 1, 0, 0, client_id)


def msg(msg_id, name=b"", payload=b""):
    return struct.pack(">IBBQ", 10 + len(name) + len(payload), 0x01, len(name), msg_id) + name + payload


def ack(status, count, last):
    return struct.pack(">IBBHIQ", 16, 0x81, status, 0, count, last)


def err(code, reason):
    return struct.pack(">IBB", 2 + len(reason), 0x82, code) + reason


def frames_input(stream, limit=1 << 20, cls=3, split1=0, split2=0):
    """fuzz_frames: u8 limit class, u32 raw limit, u16 split, u16 split, stream."""
    return struct.pack(">BIHH", cls, limit, split1, split2) + stream


# --- log format ----------------------------------------------------------------------------

FILE_HEADER = bytes.fromhex("4d5347534c4f47000100100034b1d566")


def record(seq, name=b"", payload=b"", time_us=1700000000000000, client_id=7, msg_id=1):
    body = struct.pack("<QQIQB", seq, time_us, client_id, msg_id, len(name)) + name + payload
    return struct.pack("<II", len(body), crc32c(body)) + body


def records_raw(data):
    """fuzz_records raw mode: byte 0 even, then the bytes (scanned after a file header)."""
    return b"\x00" + data


def records_structured(spec):
    """fuzz_records structured mode: byte 0 odd, then the record/damage description."""
    return b"\x01" + spec


# --- corpora -------------------------------------------------------------------------------

def frames_corpus():
    out = {}
    msgs = [(int(f.get("max_message_bytes", 1 << 20)), bytes.fromhex(f["hex"]))
            for k, f in vectors("frames.txt") if k == "msg"]
    everything = hello() + b"".join(m for lim, m in msgs if lim == 1 << 20)
    out["vectors-all-1mib"] = frames_input(everything, cls=6)
    out["vectors-all-1mib-split"] = frames_input(everything, cls=6, split1=5, split2=40)
    for i, (lim, m) in enumerate(msgs):
        out[f"vector-msg-{i}"] = frames_input(hello(i) + m, limit=lim, split1=13, split2=len(m))
    for i, h in enumerate(vec_hex("frames.txt", "hello")):
        out[f"vector-hello-{i}"] = frames_input(h, cls=0, limit=16)
    for i, h in enumerate(vec_hex("frames.txt", "bad_hello")):
        out[f"vector-bad-hello-{i}"] = frames_input(h, cls=0, limit=16)
    for k, f in vectors("frames.txt"):
        if k == "bad_client_frame":
            h = bytes.fromhex(f["hex"])
            out[f"vector-bad-frame-{h.hex()}"] = frames_input(hello() + h, limit=int(f["max_message_bytes"]))
        if k == "need_more_frame" and "hex" in f:
            h = bytes.fromhex(f["hex"])
            lim = int(f.get("max_message_bytes", 1 << 20))
            out[f"vector-need-more-{hashlib.sha1(h).hexdigest()[:8]}"] = frames_input(hello() + h, limit=lim)
    # Limits at the edges: 0, exactly at the bound, TOO_LARGE payload, near 4 GiB.
    out["limit-0-empty"] = frames_input(hello() + msg(1) + msg(2, b"n"), cls=0, limit=0)
    out["limit-0-too-large"] = frames_input(hello() + msg(1, b"", b"x") + msg(2), cls=0, limit=0)
    out["limit-16-at-bound"] = frames_input(hello() + msg(3, b"a" * 255, b"p" * 16), cls=0, limit=16)
    out["limit-16-too-large-in-bound"] = frames_input(hello() + msg(3, b"", b"p" * 40) + msg(4), cls=0, limit=16)
    out["limit-16-over-bound"] = frames_input(hello() + struct.pack(">I", 10 + 255 + 17) + b"\x01", cls=0, limit=16)
    out["limit-u32max"] = frames_input(hello() + bytes.fromhex("fffffffc01"), cls=3, limit=0xFFFFFFFF)
    out["limit-u32max-minus"] = frames_input(hello() + bytes.fromhex("fffffffb0100"), cls=3, limit=0xFFFFFEF0)
    out["many-small"] = frames_input(hello() + b"".join(msg(i, b"q", bytes([i])) for i in range(40)),
                                     cls=1, limit=64, split1=100, split2=300)
    out["partial-hello"] = frames_input(b"MSGS\x01\x00", cls=6)
    out["hello-then-partial"] = frames_input(hello() + msg(9, b"name", b"payload")[:-3], cls=6)
    return out


def server_frames_corpus():
    out = {}
    acks = vec_hex("frames.txt", "ack")
    errs = vec_hex("frames.txt", "err")
    for i, h in enumerate(acks):
        out[f"vector-ack-{i}"] = h
    for i, h in enumerate(errs):
        out[f"vector-err-{i}"] = h
    out["acks-then-err"] = b"".join(acks) + errs[0]
    for i, h in enumerate(vec_hex("frames.txt", "bad_server_frame")):
        out[f"vector-bad-{i}"] = h
    for k, f in vectors("frames.txt"):
        if k == "err_cut":
            # As round-trip fields: status, count, last, name_len, payload_len, then reason bytes.
            out[f"err-cut-{hashlib.sha1(f['input_hex'].encode()).hexdigest()[:8]}"] = (
                struct.pack(">BIQBH", int(f["code"]), 1, 2, 0, 0) + bytes.fromhex(f["input_hex"]))
    out["ack-reserved-nonzero"] = struct.pack(">IBBHIQ", 16, 0x81, 0, 0xFFFF, 1, 1)
    out["err-max-reason"] = err(12, "é".encode() * 127 + b"x")
    out["long-utf8-reason"] = struct.pack(">BIQBH", 5, 3, 4, 3, 2) + b"abc" + b"pp" + "✓".encode() * 100
    out["truncated-ack"] = ack(0, 1, 1)[:-1]
    out["truncated-err"] = err(1, b"reason")[:-2]
    return out


def records_corpus():
    out = {}
    recs = vec_hex("records.txt", "record")
    for i, h in enumerate(recs):
        out[f"vector-record-{i}"] = records_raw(h)
    good = [r for r in recs if len(r) < 600]
    out["vectors-file"] = records_raw(b"".join(good))
    out["vectors-file-with-header"] = records_raw(FILE_HEADER + b"".join(good))
    for i, h in enumerate(vec_hex("records.txt", "record_bad")):
        out[f"vector-bad-{i}"] = records_raw(h)
    for i, h in enumerate(vec_hex("records.txt", "record_truncated")):
        out[f"vector-truncated-{i}"] = records_raw(h)
    for i, h in enumerate(vec_hex("records.txt", "bad_file_header")):
        out[f"vector-bad-header-{i}"] = records_raw(h)
    r = [record(s, b"n", bytes([s]) * s, msg_id=s) for s in range(1, 6)]
    out["torn-tail"] = records_raw(b"".join(r) + r[0][:20])
    out["zero-tail"] = records_raw(b"".join(r) + bytes(64))
    out["corrupt-middle"] = records_raw(r[0] + r[1] + b"\xff" * 9 + r[2] + r[3])
    out["corrupt-flipped-crc"] = records_raw(r[0] + bytes([r[1][0], r[1][1], r[1][2], r[1][3], r[1][4] ^ 1]) + r[1][5:] + r[2])
    out["seq-repeat"] = records_raw(r[0] + r[1] + r[1] + r[2])
    out["seq-backwards"] = records_raw(r[2] + r[1] + r[3])
    out["big-seq-clean"] = records_raw(record(U64_MAX - 2) + record(U64_MAX - 1) + record(U64_MAX))
    # Structured mode: seq class, count, then per record ctl, [seq step], name_len,
    # payload_len, name, payload; then damage ops (kind, u16 pos, k).
    out["structured-clean"] = records_structured(bytes([0, 5, 3]) + bytes([1, 2, 3, 4]) * 20 + bytes([0]))
    out["structured-break"] = records_structured(bytes([0, 9, 4, 1, 2, 8, 0, 1, 1]) + bytes(40) + bytes([0, 0]))
    out["structured-cut"] = records_structured(bytes([0, 4, 1, 0, 3]) + b"abcdefgh" * 4 + bytes([1, 0, 0, 90, 0]))
    out["structured-garbage"] = records_structured(bytes([3, 3, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 2, 0, 60, 9]) + b"\xee" * 9)
    out["structured-copy"] = records_structured(bytes([0, 3, 1, 1, 1, 65, 1, 1, 66, 1, 1, 67, 1, 4, 0, 16, 1]))
    return out


def legacy_frame(client_id, msg_id, name, text):
    return struct.pack(">II", client_id, msg_id) + name.ljust(128, b"\0")[:128] + text.ljust(1024, b"\0")[:1024]


def legacy_corpus():
    """fuzz_legacy: u16 split point, then whole 1160-byte structs (and a partial one)."""
    out = {}
    a = legacy_frame(7, 1, b"orders", b"hello\0")
    b = legacy_frame(0xFFFFFFFF, 0xFFFFFFFF, b"n" * 128, b"t" * 1024)  # no NULs at all
    c = legacy_frame(1, 2, b"", b"")
    d = legacy_frame(3, 4, b"a\0garbage", b"line\0after-nul")
    out["one"] = struct.pack(">H", 0) + a
    out["full-fields"] = struct.pack(">H", 600) + b
    out["empty-fields"] = struct.pack(">H", 1159) + c
    out["after-nul"] = struct.pack(">H", 1160) + d
    out["two-and-partial"] = struct.pack(">H", 1500) + a + d + b[:300]
    out["partial"] = struct.pack(">H", 10) + a[:1159]
    return out


def regressions():
    """Known-bug reproducers: name -> (harness, bytes)."""
    m = U64_MAX
    return {
        # scan: last good seq = 2^64-2, one damaged byte, then a valid record with seq
        # 2^64-1. find_next_valid's window last_seq + k wraps to a small number, the
        # valid record is skipped and the damage is reported as a torn tail (recovery
        # would cut a valid record) instead of corruption with next_valid = 54.
        "seq-wrap-torn-instead-of-corrupt": ("records", records_raw(record(m - 1) + b"\x00" + record(m))),
        # scan of a clean file (two records, seq 1 and 2) returns max_seq = 0: the
        # assignment s.max_seq = s.last_seq comes after the early return for a clean
        # walk, while record.h documents max_seq as the highest seq of any valid record.
        "clean-scan-max-seq-zero": ("records", records_raw(record(1) + record(2))),
    }


def write_dir(d, files, wipe):
    if wipe and os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(files.items()):
        p = os.path.join(d, name)
        if not wipe and os.path.exists(p):
            continue
        with open(p, "wb") as f:
            f.write(data)


def main():
    corpora = {"frames": frames_corpus(), "server_frames": server_frames_corpus(), "records": records_corpus(),
               "legacy": legacy_corpus()}
    for name, files in corpora.items():
        write_dir(os.path.join(HERE, "corpus", name), files, wipe=True)
        print(f"fuzz/corpus/{name}: {len(files)} files")
    by_harness = {}
    for name, (harness, data) in regressions().items():
        by_harness.setdefault(harness, {})[name] = data
    for harness, files in by_harness.items():
        write_dir(os.path.join(HERE, "regressions", harness), files, wipe=False)
        print(f"fuzz/regressions/{harness}: {len(files)} files")


if __name__ == "__main__":
    main()
