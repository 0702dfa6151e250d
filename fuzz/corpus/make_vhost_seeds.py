#!/usr/bin/env python3
"""Regenerates the seeds of vhost_virtqueue_fuzz: well-formed virtio-blk
requests on a split ring of 8 entries, laid out as the fuzz target expects
(mode byte, lastAvailIdx byte, guest memory from gpa 0: desc table at 0,
avail ring at 128, used ring at 152). Buffers the device only writes sit
past the end of the seed; the target zero-fills guest memory up to 32 KiB.
Run from anywhere: python3 fuzz/corpus/make_vhost_seeds.py
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vhost_virtqueue")
N = 8
AVAIL = 16 * N
NEXT, WRITE, INDIRECT = 1, 2, 4
IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES = 0, 1, 4, 8, 11, 13
LOG2_N = 3
EVENT_IDX, INDIRECT_F, LOG = 8, 16, 32


class Guest:
    def __init__(self):
        self.mem = bytearray(0x800)
        self.desc = 0
        self.avail_idx = 0
        self.hdr = 0x400

    def put(self, addr, blob):
        end = addr + len(blob)
        if end > len(self.mem):
            self.mem.extend(bytes(end - len(self.mem)))
        self.mem[addr:end] = blob

    def set_desc(self, table, i, addr, length, flags, nxt):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def header(self, type_, sector):
        addr = self.hdr
        self.put(addr, struct.pack("<IIQ", type_, 0, sector))
        self.hdr += 16
        return addr

    def post(self, bufs):
        head = self.desc
        for k, (addr, length, writable) in enumerate(bufs):
            last = k == len(bufs) - 1
            flags = (WRITE if writable else 0) | (0 if last else NEXT)
            self.set_desc(0, self.desc, addr, length, flags, self.desc + 1)
            self.desc += 1
        self.publish(head)

    def publish(self, head):
        self.put(AVAIL + 4 + 2 * (self.avail_idx % N), struct.pack("<H", head))
        self.avail_idx += 1
        self.put(AVAIL + 2, struct.pack("<H", self.avail_idx))

    def seed(self, mode):
        return bytes([mode, 0]) + bytes(self.mem)


def write(name, blob):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(blob)


def main():
    os.makedirs(HERE, exist_ok=True)
    status = 0x700

    g = Guest()
    g.post([(g.header(IN, 8), 16, False), (0x1000, 4096, True), (status, 1, True)])
    write("read.bin", g.seed(LOG2_N))

    g = Guest()
    g.post([(g.header(OUT, 16), 16, False), (0x1000, 4096, False), (status, 1, True)])
    write("write.bin", g.seed(LOG2_N | LOG))

    g = Guest()
    hdr = g.header(IN, 0)
    g.post([(hdr, 5, False), (hdr + 5, 11, False), (0x1000, 512, True), (0x1200, 3585, True)])
    write("split_header.bin", g.seed(LOG2_N))

    g = Guest()
    g.post([(g.header(FLUSH, 0), 16, False), (status, 1, True)])
    g.post([(g.header(GET_ID, 0), 16, False), (0x600, 20, True), (status + 1, 1, True)])
    seg = g.header(DISCARD, 0)
    g.put(0x480, struct.pack("<QII", 8, 8, 0))
    g.post([(seg, 16, False), (0x480, 16, False), (status + 2, 1, True)])
    g.put(0x490, struct.pack("<QII", 16, 16, 1))
    g.post([(g.header(WRITE_ZEROES, 0), 16, False), (0x490, 16, False), (status + 3, 1, True)])
    write("flush_id_discard_zeroes.bin", g.seed(LOG2_N | EVENT_IDX | LOG))

    g = Guest()
    table = 0x500
    g.set_desc(table, 0, g.header(IN, 24), 16, NEXT, 1)
    g.set_desc(table, 1, 0x1000, 8192, NEXT | WRITE, 2)
    g.set_desc(table, 2, status, 1, WRITE, 0)
    g.set_desc(0, 0, table, 48, INDIRECT, 0)
    g.publish(0)
    write("indirect.bin", g.seed(LOG2_N | INDIRECT_F | EVENT_IDX))


if __name__ == "__main__":
    main()
