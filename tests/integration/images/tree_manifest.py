#!/usr/bin/env python3
"""Prints one line per path under ROOT: type, mode, owner, size, link target,
device numbers, content sha256, xattrs (trusted.overlay.* excluded, as
overlayfs hides them) and a hard-link group. Two rootfs trees are equal when
these listings are equal. Usage: tree_manifest.py ROOT"""
import hashlib, os, stat, sys

root = sys.argv[1]
skip = {"proc", "sys", "dev/pts", "dev/shm"}
inodes = {}
lines = []
for dirpath, dirnames, filenames in os.walk(root):
    rel_dir = os.path.relpath(dirpath, root)
    dirnames[:] = sorted(n for n in dirnames if os.path.normpath(os.path.join(rel_dir, n)) not in skip)
    for name in sorted(dirnames + filenames):
        full = os.path.join(dirpath, name)
        rel = os.path.normpath(os.path.join(rel_dir, name))
        st = os.lstat(full)
        kind = stat.S_IFMT(st.st_mode)
        extra = ""
        if stat.S_ISREG(kind):
            with open(full, "rb") as f:
                extra = hashlib.sha256(f.read()).hexdigest()
            if st.st_nlink > 1:
                inodes.setdefault(st.st_ino, []).append(rel)
        elif stat.S_ISLNK(kind):
            extra = "-> " + os.readlink(full)
        elif stat.S_ISCHR(kind) or stat.S_ISBLK(kind):
            extra = "dev %d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
        try:
            xs = sorted(x for x in os.listxattr(full, follow_symlinks=False) if not x.startswith("trusted.overlay."))
            xa = ",".join("%s=%s" % (x, os.getxattr(full, x, follow_symlinks=False).hex()) for x in xs)
        except OSError:
            xa = "?"
        size = st.st_size if stat.S_ISREG(kind) or stat.S_ISLNK(kind) else 0
        mtime = int(st.st_mtime) if not stat.S_ISDIR(kind) else "-"
        lines.append("%s %o %d:%d %d %s %s [%s] %s" % (rel, st.st_mode, st.st_uid, st.st_gid, size, mtime, extra, xa, ""))
for group in inodes.values():
    lines.append("hardlinks " + " ".join(sorted(group)))
print("\n".join(sorted(lines)))
