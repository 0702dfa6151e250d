#!/usr/bin/env python3
"""How long a cpu of this machine stops running a task that wants it.

stall_probe.py --cpu N [--seconds S] [--threshold-ms T]

Pins itself to cpu N at SCHED_FIFO priority 1 (above every normal task, so
what still stops it is interrupts, kernel work at higher priority and the
hypervisor taking the vcpu away) and reads the monotonic clock in a loop
for S seconds. Every jump between two reads longer than T ms is a stall.
It runs in windows of 0.45 s with 0.05 s of sleep between them, so the
kernel's RT throttling (95% of each second) never stops it, and the gaps
it sleeps through are not counted.

Prints one JSON object: cpu, seconds spun, stalls (count), stall_ms
(summed), max_ms, and the stall start times (s from the start, up to 50).
Needs root (SCHED_FIFO); without it, runs at the normal scheduler and says
so ("fifo": false).
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threshold-ms", type=float, default=1.0)
    a = ap.parse_args()
    if a.cpu not in os.sched_getaffinity(0) and a.cpu >= os.cpu_count():
        sys.exit(f"stall_probe: no cpu {a.cpu} on this machine")
    os.sched_setaffinity(0, {a.cpu})
    fifo = True
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        fifo = False
    limit = int(a.threshold_ms * 1e6)
    clock = time.monotonic_ns
    t0 = clock()
    spun = 0
    stalls, stall_ns, max_ns, starts = 0, 0, 0, []
    while spun < a.seconds * 1e9:
        start = last = clock()
        end = start + int(0.45e9)
        while last < end:
            now = clock()
            gap = now - last
            if gap > limit:
                stalls += 1
                stall_ns += gap
                max_ns = max(max_ns, gap)
                if len(starts) < 50:
                    starts.append(round((last - t0) / 1e9, 3))
            last = now
        spun += last - start
        time.sleep(0.05)
    print(json.dumps({"cpu": a.cpu, "fifo": fifo, "seconds": round(spun / 1e9, 2), "threshold_ms": a.threshold_ms,
                      "stalls": stalls, "stall_ms": round(stall_ns / 1e6, 2), "max_ms": round(max_ns / 1e6, 2),
                      "at_s": starts}))


if __name__ == "__main__":
    main()
