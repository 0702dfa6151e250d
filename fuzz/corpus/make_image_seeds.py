#!/usr/bin/env python3
"""Regenerates the seeds of tar_reader_fuzz and chunk_index_fuzz.

Each seed is tiny (< 4 KiB) and deterministic. tar_reader seeds are one mode
byte (bit 0: 0 overlay form, 1 in place) followed by a layer blob; the
chunk_index seed is mode byte, u16 index length, index, chunk data (see the
fuzz targets). Run from anywhere: python3 fuzz/corpus/make_image_seeds.py
"""
import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
MTIME = 1700000000


def member(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size = kind, mode, MTIME, len(data)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def tar(members, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data else None)
        end = tf.offset
    # Drop tarfile's padding to a 10 KiB record: keep only the 1 KiB end marker.
    return buf.getvalue()[:end] + b"\0" * 1024


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write(sub, name, data):
    assert len(data) < 4096, (name, len(data))
    os.makedirs(os.path.join(HERE, sub), exist_ok=True)
    with open(os.path.join(HERE, sub, name), "wb") as f:
        f.write(data)


def tar_seeds():
    basic = tar([
        member("etc/", tarfile.DIRTYPE, mode=0o755),
        member("etc/motd", data=b"hi\n"),
        member("etc/sh", tarfile.SYMTYPE, linkname="/bin/dash", mode=0o777),
        member("etc/motd2", tarfile.LNKTYPE, linkname="etc/motd"),
    ])
    write("tar_reader", "basic_overlay.tar", b"\x00" + basic)

    whiteouts = tar([
        member("d/.wh..wh..opq"),
        member("d/new", data=b"n"),
        member(".wh.gone"),
    ])
    write("tar_reader", "whiteouts_in_place.tar", b"\x01" + whiteouts)

    rich = tar([
        member("./", tarfile.DIRTYPE, mode=0o755),
        member("bin/su", data=b"ELF", mode=0o4755, uid=1000, gid=1000),
        member("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        member("dev/loop0", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0),
        member("run/fifo", tarfile.FIFOTYPE, mode=0o600),
        member("x", data=b"xattrs", pax_headers={"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.t": "y"}),
        member("tmp/", tarfile.DIRTYPE, mode=0o1777),
        member("tmp/.wh.old"),
    ], fmt=tarfile.PAX_FORMAT)
    write("tar_reader", "rich.tar.gz", b"\x00" + gzip.compress(rich, mtime=0))
    if shutil.which("zstd"):
        zst = subprocess.run(["zstd", "-q", "-c", "-19"], input=rich, stdout=subprocess.PIPE, check=True).stdout
        write("tar_reader", "rich_in_place.tar.zst", b"\x01" + zst)


def chunk_seed():
    # Two raw chunks of a 4 KiB-chunked image: one full, one short.
    chunk_size, raw = 4096, bytes(range(256)) * 16 + b"tail" * 25
    chunks = [raw[:chunk_size], raw[chunk_size:]]
    blob = b"".join(chunks)
    digest = ("sha256:" + hashlib.sha256(blob).hexdigest()).encode()
    out = b"OCCHNK01" + struct.pack("<IIQII", 1, chunk_size, len(raw), len(chunks), 0)
    out += digest.ljust(72, b"\0")
    offset = 0
    for c in chunks:
        out += struct.pack("<QIIB7x", offset, len(c), len(c), 0) + hashlib.sha256(c).digest()
        offset += len(c)
    out += struct.pack("<I", crc32c(out))
    # The data is cut to the short chunk: the fuzzer decodes what fits.
    write("chunk_index", "raw_index_and_tail.bin", b"\x00" + struct.pack("<H", len(out)) + out + chunks[1])
    write("chunk_index", "raw_index_only.bin", b"\x00" + struct.pack("<H", len(out)) + out)


if __name__ == "__main__":
    tar_seeds()
    chunk_seed()
