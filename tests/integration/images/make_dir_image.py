#!/usr/bin/env python3
"""Writes an OCI image layout with one layer per directory (bottom first),
each a tar+gzip of the directory's tree (symlinks kept), and the given
config (a JSON object merged into the image config's "config").
Usage: make_dir_image.py OUT_DIR TAG CONFIG_JSON DIR [DIR...]"""
import gzip, hashlib, io, json, os, sys, tarfile

from make_fidelity_image import put_blob


def layer_tar(root):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = os.path.join(dirpath, name)
                arc = os.path.relpath(full, root)
                ti = tf.gettarinfo(full, arc)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = 1700000000
                if ti.isreg():
                    with open(full, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
    return buf.getvalue()


def main():
    out, tag, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    layers, diff_ids = [], []
    for root in sys.argv[4:]:
        raw = layer_tar(root)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        dg, size = put_blob(out, gzip.compress(raw, mtime=0))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": size})
    config = {"architecture": "amd64", "os": "linux", "config": cfg,
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdg, csize = put_blob(out, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdg, "size": csize},
                "layers": layers}
    mdg, msize = put_blob(out, json.dumps(manifest).encode())
    index_path = os.path.join(out, "index.json")
    index = json.load(open(index_path)) if os.path.exists(index_path) else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg,
                               "size": msize, "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(index_path, "w") as f:
        json.dump(index, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


if __name__ == "__main__":
    main()
