#!/usr/bin/env python3
"""Regenerates the seeds of vhost_packed_fuzz: well-formed virtio-blk
requests on a packed ring of 8 entries, laid out as the fuzz target expects
(mode byte, base byte, unpop byte, guest memory from gpa 0: descriptor ring
at 0, driver event area at 128, device event area at 132). Buffers the
device only writes sit past the end of the seed; the target zero-fills guest
memory up to 32 KiB.
Run from anywhere: python3 fuzz/corpus/make_vhost_packed_seeds.py
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vhost_packed")
N = 8
NEXT, WRITE, INDIRECT = 1, 2, 4
AVAIL, USED = 1 << 7, 1 << 15
IN, OUT, FLUSH = 0, 1, 4
SIZE_BITS = N - 1
EVENT_IDX, INDIRECT_F, LOG = 16, 32, 64


class Guest:
    def __init__(self, start=0, wrap=True):
        self.mem = bytearray(0x800)
        self.pos = start
        self.wrap = wrap
        self.hdr = 0x400
        self.next_id = 0

    def put(self, addr, blob):
        end = addr + len(blob)
        if end > len(self.mem):
            self.mem.extend(bytes(end - len(self.mem)))
        self.mem[addr:end] = blob

    def set_desc(self, table, i, addr, length, buf_id, flags):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, buf_id, flags))

    def bits(self):
        return AVAIL if self.wrap else USED

    def step(self):
        self.pos += 1
        if self.pos == N:
            self.pos = 0
            self.wrap = not self.wrap

    def header(self, type_, sector):
        addr = self.hdr
        self.put(addr, struct.pack("<IIQ", type_, 0, sector))
        self.hdr += 16
        return addr

    def post(self, bufs):
        buf_id = self.next_id
        self.next_id += 1
        for k, (addr, length, writable) in enumerate(bufs):
            last = k == len(bufs) - 1
            flags = (WRITE if writable else 0) | (0 if last else NEXT) | self.bits()
            self.set_desc(0, self.pos, addr, length, buf_id, flags)
            self.step()

    def post_indirect(self, table, entries):
        self.set_desc(0, self.pos, table, 16 * entries, self.next_id, INDIRECT | self.bits())
        self.next_id += 1
        self.step()

    def seed(self, mode, base, unpop=0):
        return bytes([mode, base, unpop]) + bytes(self.mem)


def write(name, blob):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(blob)


def main():
    os.makedirs(HERE, exist_ok=True)
    status = 0x700

    g = Guest()
    g.post([(g.header(IN, 8), 16, False), (0x1000, 4096, True), (status, 1, True)])
    write("read.bin", g.seed(SIZE_BITS, 0x80))

    g = Guest()
    g.post([(g.header(OUT, 16), 16, False), (0x1000, 4096, False), (status, 1, True)])
    g.post([(g.header(FLUSH, 0), 16, False), (status + 1, 1, True)])
    write("write_flush.bin", g.seed(SIZE_BITS | LOG | EVENT_IDX, 0x80, 0x01))

    # Starts at index 6 of the first lap: the second chain crosses the end.
    g = Guest(start=6)
    g.post([(g.header(IN, 0), 16, False), (status, 1, True)])
    g.post([(g.header(IN, 8), 16, False), (0x1000, 512, True), (status + 1, 1, True)])
    write("wrap.bin", g.seed(SIZE_BITS, 0x80 | 6, 0x02))

    # The second lap (wrap counter 0).
    g = Guest(start=0, wrap=False)
    g.post([(g.header(IN, 0), 16, False), (0x1000, 512, True), (status, 1, True)])
    write("second_lap.bin", g.seed(SIZE_BITS | LOG, 0))

    g = Guest()
    table = 0x600
    g.set_desc(table, 0, g.header(IN, 4), 16, 0, 0)
    g.set_desc(table, 1, 0x1000, 2048, 0, WRITE)
    g.set_desc(table, 2, status, 1, 0, WRITE)
    g.post_indirect(table, 3)
    write("indirect.bin", g.seed(SIZE_BITS | INDIRECT_F | LOG, 0x80))


if __name__ == "__main__":
    main()
