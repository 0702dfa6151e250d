#!/usr/bin/env python3
"""Regenerates the seeds of vhost_packed_inflight_fuzz: packed inflight
regions of an 8-entry queue as a back end leaves them (the spec's layout,
src/virt/vhost/packed_inflight.h), laid out as the fuzz target expects
(queue size - 1 as u16, the vring base's used half as u16, the region, then
the descriptor ring): unused, idle, two chains in flight, a pop cut short,
and a push cut short before and after its used descriptor was published.
Run from anywhere: python3 fuzz/corpus/make_vhost_packed_inflight_seeds.py
"""
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vhost_packed_inflight")
N = 8
AVAIL, USED = 1 << 7, 1 << 15
WRAP = 0x8000


def region(free, old_free, used, old_used, wrap=1, old_wrap=1, chains=(), nexts=None):
    """chains: (head entry, [entries], counter); nexts: entry -> next link."""
    r = bytearray(32 + 32 * N)
    struct.pack_into("<QHHHHHHBB", r, 0, 0, 1, N, free, old_free, used, old_used, wrap, old_wrap)
    links = {i: i + 1 for i in range(N)}
    links.update(nexts or {})
    for i in range(N):
        struct.pack_into("<H", r, 32 + 32 * i + 2, links[i])
    for head, entries, counter in chains:
        e = 32 + 32 * head
        struct.pack_into("<BxHHHQ", r, e, 1, links[head], entries[-1], len(entries), counter)
        for k, x in enumerate(entries):
            struct.pack_into("<HHIQ", r, 32 + 32 * x + 16, 7 + head, 2 if k + 1 == len(entries) else 1, 512,
                             0x1000 * (x + 1))
    return bytes(r)


def ring(published=()):
    """Slot flags: available in lap 1, or used where published."""
    d = bytearray(16 * N)
    for i in range(N):
        struct.pack_into("<H", d, 16 * i + 14, (AVAIL | USED) if i in published else AVAIL)
    return bytes(d)


def seed(name, base, reg, rng):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<HH", N - 1, base) + reg + rng)


os.makedirs(HERE, exist_ok=True)
seed("unused", WRAP, bytes(32 + 32 * N), ring())
seed("idle", WRAP | 3, region(0, 0, 3, 3), ring())
two = [(0, [0, 1], 1), (2, [2], 2)]
seed("two-in-flight", WRAP, region(3, 3, 0, 0, chains=two), ring())
seed("pop-cut-short", WRAP, region(3, 0, 0, 0, chains=[(0, [0, 1, 2], 1)]), ring())
# Chain at entry 2 released (its next = old free head 3, free head 2) and
# used_idx moved by one, flags not yet stored / already stored.
cut = dict(free=2, old_free=3, used=1, old_used=0, chains=[(0, [0, 1], 1), (2, [2], 2)], nexts={2: 3})
seed("push-before-publish", WRAP, region(**cut), ring())
seed("push-after-publish", WRAP, region(**cut), ring(published={0}))
