#!/usr/bin/env python3
"""Build the embedded cluster's container images as OCI layout tars, without a registry.

    build-images.py <out dir> <busybox binary> <pause binary> <shm-mmap binary>

Writes <out dir>/busybox.tar (localhost/shmfix/busybox:local, every busybox applet as a symlink
in /bin, and /bin/shm-mmap: images/shm-mmap.c, the mmap writer that dies with SIGBUS on a full
/dev/shm) and <out dir>/pause.tar (localhost/shmfix/pause:local). Each tar is an OCI image layout
(oci-layout, index.json, blobs/sha256/...) with one uncompressed layer, which
`ctr -n k8s.io images import` (containerd 1.6) accepts. Output is deterministic (mtime 0,
uid/gid 0), so the same inputs give the same image digests. Standard library only.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

BUSYBOX_REF = "localhost/shmfix/busybox:local"
PAUSE_REF = "localhost/shmfix/pause:local"


def _add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def _add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _add_symlink(tar, name, target):
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    tar.addfile(info)


def _layer(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def busybox_layer(busybox, shm_mmap):
    with open(busybox, "rb") as f:
        binary = f.read()
    with open(shm_mmap, "rb") as f:
        writer = f.read()
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    if "sh" not in applets or "df" not in applets or "dd" not in applets:
        sys.exit(f"build-images: {busybox} lacks sh/df/dd applets; install busybox-static")

    def build(tar):
        for d in ("bin", "dev", "etc", "proc", "sys", "root", "var"):
            _add_dir(tar, d)
        _add_dir(tar, "tmp", 0o1777)
        _add_file(tar, "bin/busybox", binary, 0o755)
        _add_file(tar, "bin/shm-mmap", writer, 0o755)
        for applet in sorted(set(applets)):
            if applet != "busybox":
                _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        _add_file(tar, "etc/group", b"root:x:0:\nnobody:x:65534:\n")

    return _layer(build)


def pause_layer(pause):
    with open(pause, "rb") as f:
        binary = f.read()
    return _layer(lambda tar: _add_file(tar, "pause", binary, 0o755))


def _blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return f"sha256:{digest}", len(data)


def write_oci_tar(path, ref, layer, config_extra):
    blobs = {}
    layer_digest, layer_size = _blob(blobs, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": config_extra,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "localcluster/scripts/build-images.py"}],
    }
    config_digest, config_size = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1],
                },
            }
        ],
    }
    tmp = path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add_file(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_file(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for digest, data in sorted(blobs.items()):
            _add_file(tar, f"blobs/sha256/{digest}", data)
    os.replace(tmp, path)
    return manifest_digest


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    out, busybox, pause, shm_mmap = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    d1 = write_oci_tar(os.path.join(out, "busybox.tar"), BUSYBOX_REF, busybox_layer(busybox, shm_mmap),
                       {"Env": env, "Cmd": ["sh"], "WorkingDir": "/"})
    d2 = write_oci_tar(os.path.join(out, "pause.tar"), PAUSE_REF, pause_layer(pause),
                       {"Env": env, "Entrypoint": ["/pause"], "WorkingDir": "/"})
    print(f"build-images: {BUSYBOX_REF} {d1}")
    print(f"build-images: {PAUSE_REF} {d2}")


if __name__ == "__main__":
    main()
