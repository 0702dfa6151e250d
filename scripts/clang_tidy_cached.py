#!/usr/bin/env python3
"""clang-tidy over translation units, skipping those already found clean.

    scripts/clang_tidy_cached.py BUILD_DIR LOG FILE...

A unit is clean for a key made of clang-tidy's version, .clang-tidy, the
unit's path in the repository, its compile flags and its preprocessed text
(the checkout's path taken out, so clones in other folders share entries).
Clean keys are files under $OFFCORE_TIDY_CACHE (default
~/.cache/offcore-clang-tidy); findings are never cached. Entries unused for
30 days are removed. Writes every finding to LOG; exits 0 (the caller reads
LOG, as it did run-clang-tidy's output). The text is the build's compiler's
(g++) preprocessing: a header section only clang sees (#ifdef __clang__) is
not in the key; offcore's code has none.
"""

import concurrent.futures
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
KEEP_DAYS = 30


def cache_dir():
    default = os.path.join(os.path.expanduser("~"), ".cache", "offcore-clang-tidy")
    path = os.environ.get("OFFCORE_TIDY_CACHE", default)
    os.makedirs(path, exist_ok=True)
    return path


def without_root(data: bytes) -> bytes:
    return data.replace(ROOT.encode(), b"@ROOT@")


def preprocess_argv(entry):
    argv = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if arg in ("-c", "-MD", "-MMD"):
            continue
        out.append(arg)
    return out + ["-E", "-P", "-o", "-"]


def key_of(entry, salt: bytes):
    argv = preprocess_argv(entry)
    pre = subprocess.run(argv, cwd=entry["directory"], capture_output=True, check=False)
    if pre.returncode != 0:
        return None  # clang-tidy will say what is wrong
    digest = hashlib.sha256(salt)
    digest.update(without_root(os.path.relpath(entry["file"], ROOT).encode()))
    digest.update(without_root(" ".join(argv).encode()))
    digest.update(without_root(pre.stdout))
    return digest.hexdigest()


def tidy_one(build_dir, entry, salt, cache):
    key = key_of(entry, salt)
    marker = os.path.join(cache, key) if key else None
    if marker and os.path.exists(marker):
        os.utime(marker)
        return True, ""
    run = subprocess.run(["clang-tidy", "-quiet", "-p", build_dir, entry["file"]],
                         capture_output=True, text=True, check=False)
    if run.returncode == 0 and marker:
        with open(marker, "w", encoding="utf-8"):
            pass
    return False, run.stdout + run.stderr


def prune(cache):
    limit = time.time() - KEEP_DAYS * 86400
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        if os.path.getmtime(path) < limit:
            os.remove(path)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    build_dir, log = sys.argv[1], sys.argv[2]
    wanted = {os.path.realpath(f) for f in sys.argv[3:]}
    with open(os.path.join(build_dir, "compile_commands.json"), encoding="utf-8") as f:
        entries, seen = [], set()
        for e in json.load(f):
            path = os.path.realpath(e["file"])
            # A file built into two targets (the unit and the threaded test
            # binaries) is checked once.
            if path in wanted and path not in seen:
                seen.add(path)
                entries.append(e)
    version = subprocess.run(["clang-tidy", "--version"], capture_output=True, check=True).stdout
    with open(os.path.join(ROOT, ".clang-tidy"), "rb") as f:
        salt = version + f.read()
    cache = cache_dir()
    prune(cache)
    cached = 0
    with open(log, "w", encoding="utf-8") as out, \
            concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = [pool.submit(tidy_one, build_dir, e, salt, cache) for e in entries]
        for job in concurrent.futures.as_completed(jobs):
            hit, text = job.result()
            cached += hit
            out.write(text)
    print(f"lint: clang-tidy over {len(entries)} units, {cached} clean from the cache ({cache})")


if __name__ == "__main__":
    main()
