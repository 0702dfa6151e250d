#!/usr/bin/env python3
"""Regenerates the seeds of vhost_net_fuzz: rings of 8 entries as the fuzz
target lays them out (mode byte, frame count, frame length LE16, guest memory
from gpa 0: rx desc at 0, avail at 128, used at 152; tx the same from 8192),
with receive buffers posted (one big, or several small for MRG_RXBUF) and
transmit chains (header + frame, split or not). Frame bytes are the start of
guest memory. Run from anywhere: python3 fuzz/corpus/make_vhost_net_seeds.py
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vhost_net")
N, LOG2_N = 8, 3
NEXT, WRITE = 1, 2
EVENT_IDX, LOG, MRG, V1 = 8, 32, 64, 128
TX = 8192


class Guest:
    def __init__(self):
        self.mem = bytearray(0x3000)
        self.next = {0: 0, TX: 0}
        self.avail = {0: 0, TX: 0}

    def put(self, addr, blob):
        self.mem[addr:addr + len(blob)] = blob

    def post(self, base, bufs):
        head = self.next[base]
        for k, (addr, length, flags) in enumerate(bufs):
            i = head + k
            last = k + 1 == len(bufs)
            self.put(base + 16 * i, struct.pack("<QIHH", addr, length, flags | (0 if last else NEXT), i + 1))
        self.next[base] += len(bufs)
        avail = base + 16 * N
        self.put(avail + 4 + 2 * (self.avail[base] % N), struct.pack("<H", head))
        self.avail[base] += 1
        self.put(avail + 2, struct.pack("<H", self.avail[base]))


def seed(name, mode, frames, frame_len, rx, tx):
    g = Guest()
    for bufs in rx:
        g.post(0, bufs)
    for bufs in tx:
        g.post(TX, bufs)
    blob = bytes([mode, frames]) + struct.pack("<H", frame_len) + bytes(g.mem)
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(blob)


hdr_tx = [(TX + 0x1000, 12, 0), (TX + 0x1100, 500, 0)]
seed("rx_one_tx_split", LOG2_N | V1 | MRG, 1, 600, [[(0x1000, 2048, WRITE)]], [hdr_tx])
seed("rx_merged", LOG2_N | V1 | MRG | LOG, 2, 1500,
     [[(0x1000 + 256 * i, 256, WRITE)] for i in range(8)], [[(TX + 0x1000, 600, 0)]])
seed("rx_legacy_too_small", LOG2_N | EVENT_IDX, 3, 300, [[(0x1000, 100, WRITE)], [(0x1100, 400, WRITE)]], [])
seed("tx_writable", LOG2_N | V1, 0, 0, [], [[(TX + 0x1000, 64, 0), (TX + 0x1100, 64, WRITE)]])
