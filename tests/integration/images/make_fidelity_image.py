#!/usr/bin/env python3
"""Writes a three-layer OCI image layout whose layers exercise everything a
layer applier can get wrong: whiteouts, opaque directories (marker before and
after the entries), hard links, symlinks, xattrs, devices, FIFOs, setuid bits,
owners, mtimes, a directory replaced by a file. Layers are tar+gzip, plain
tar and tar+zstd. Usage: make_fidelity_image.py OUT_DIR TAG [--with-big-files]
(adds /data/big1 and /data/big2, 512 KiB each; `--big-file NAME` prints one)."""
import gzip, hashlib, io, json, os, subprocess, sys, tarfile, time

MTIME = 1700000000
BUSYBOX = "/bin/busybox"


def entry(tf, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", dev=(0, 0), xattrs=None):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, MTIME
    ti.linkname = link
    ti.devmajor, ti.devminor = dev
    if xattrs:
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    tf.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def d(tf, name, mode=0o755, **kw):
    entry(tf, name, tarfile.DIRTYPE, mode=mode, **kw)


def layer0(tf):
    for p in ["bin", "etc", "data", "data/keep", "data/gone", "data/opq", "data/opq2", "data/swap", "dev", "tmp", "proc", "sys"]:
        d(tf, p, mode=0o1777 if p == "tmp" else 0o755)
    entry(tf, "bin/busybox", data=open(BUSYBOX, "rb").read(), mode=0o755)
    for tool in ["sh", "cat", "ls", "echo", "sha256sum", "find", "stat", "head", "sleep", "true"]:
        entry(tf, "bin/" + tool, tarfile.SYMTYPE, link="busybox", mode=0o777)
    entry(tf, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    entry(tf, "etc/motd", data=b"layer zero\n", mode=0o600, uid=1000, gid=1000)
    entry(tf, "data/keep/a", data=b"A" * 5000)
    entry(tf, "data/keep/b", data=b"to be deleted\n")
    entry(tf, "data/gone/x", data=b"gone\n")
    entry(tf, "data/opq/old1", data=b"old1\n")
    entry(tf, "data/opq/old2", data=b"old2\n")
    entry(tf, "data/opq2/old", data=b"old\n")
    entry(tf, "data/swap/child", data=b"child\n")
    entry(tf, "data/xattr", data=b"x\n", xattrs={"user.offcore": "hello"})
    entry(tf, "data/setuid", data=b"#!/bin/sh\n", mode=0o4755)
    entry(tf, "data/sparse", data=b"\0" * 300000 + b"end")
    entry(tf, "data/empty", data=b"")
    entry(tf, "dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
    entry(tf, "dev/loopish", tarfile.BLKTYPE, mode=0o660, dev=(7, 200))
    entry(tf, "data/fifo", tarfile.FIFOTYPE, mode=0o640)


def layer1(tf):
    d(tf, "data")
    entry(tf, "data/.wh.gone")
    entry(tf, "data/keep/.wh.b")
    d(tf, "data/opq", mode=0o750)
    entry(tf, "data/opq/.wh..wh..opq")
    entry(tf, "data/opq/new", data=b"new in layer 1\n")
    entry(tf, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    entry(tf, "data/hl1", data=b"hard linked\n", mode=0o640, uid=7, gid=8)
    entry(tf, "data/hl2", tarfile.LNKTYPE, link="data/hl1")
    entry(tf, "data/link-rel", tarfile.SYMTYPE, link="../etc/passwd", mode=0o777)
    entry(tf, "data/link-abs", tarfile.SYMTYPE, link="/etc/motd", mode=0o777)
    entry(tf, "data/link-dangling", tarfile.SYMTYPE, link="/nowhere", mode=0o777)
    entry(tf, "data/hello.sh", data=b"#!/bin/sh\necho hello from offcore\n", mode=0o755)


def big_file(name):
    """512 KiB of incompressible bytes, the same on every run (8 chunks of 64K)."""
    return b"".join(hashlib.sha256(f"{name}-{i}".encode()).digest() for i in range(16384))


def layer2(tf, big=False):
    if big:  # files no container start reads: uncached until a test reads them
        entry(tf, "data/big1", data=big_file("big1"))
        entry(tf, "data/big2", data=big_file("big2"))
    d(tf, "data/opq2")
    entry(tf, "data/opq2/fresh", data=b"fresh\n")
    entry(tf, "data/opq2/.wh..wh..opq")
    entry(tf, "data/swap", data=b"now a file\n")
    entry(tf, "data/keep/a", data=b"B" * 7000, mode=0o600)
    entry(tf, "data/caps", data=b"cap\n", xattrs={"security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"})
    for p in ["data/deep", "data/deep/a", "data/deep/a/b"]:
        d(tf, p, mode=0o711)
    entry(tf, "data/deep/a/b/leaf", data=b"leaf\n", uid=65534, gid=65534)


def tar_bytes(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        build(tf)
    return buf.getvalue()


def put_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(out, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    if sys.argv[1] == "--big-file":  # its bytes, for a test's expected digest
        sys.stdout.buffer.write(big_file(sys.argv[2]))
        return
    out, tag = sys.argv[1], sys.argv[2]
    big = "--with-big-files" in sys.argv[3:]
    os.makedirs(out, exist_ok=True)
    layers, diff_ids = [], []
    for build, comp in [(layer0, "gzip"), (layer1, "none"), (lambda tf: layer2(tf, big), "zstd")]:
        raw = tar_bytes(build)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        if comp == "gzip":
            blob, mt = gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
        elif comp == "zstd":
            blob = subprocess.run(["zstd", "-q", "-c"], input=raw, stdout=subprocess.PIPE, check=True).stdout
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            blob, mt = raw, "application/vnd.oci.image.layer.v1.tar"
        dg, size = put_blob(out, blob)
        layers.append({"mediaType": mt, "digest": dg, "size": size})
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdg, csize = put_blob(out, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdg, "size": csize},
                "layers": layers}
    mdg, msize = put_blob(out, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": mdg, "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
