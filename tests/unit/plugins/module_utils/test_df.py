# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import json
import os

import pytest
from ansible_collections.shmfix.k8s.plugins.module_utils.df import parse_df, parse_df_rows, volume_stats_from_summary

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "..", "fixtures", "df")
KI = 1024


def read(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.mark.parametrize(
    ("fixture", "filesystem", "size", "used", "available"),
    [
        ("gnu-dfPk-runtime-default.txt", "shm", 65536 * KI, 0, 65536 * KI),
        ("gnu-dfk-sized-1Gi.txt", "tmpfs", 1024**3, 2048 * KI, 1046528 * KI),
        ("gnu-dfk-eviction-half-ram.txt", "tmpfs", 8196618 * KI, 0, 8196618 * KI),
        ("gnu-dfk-all.txt", "shm", 64 * 1024**2, 0, 64 * 1024**2),
        ("busybox-dfPk-runtime-default.txt", "shm", 64 * 1024**2, 12 * 1024**2, 52 * 1024**2),
        ("busybox-dfk-sized-8Gi.txt", "tmpfs", 8 * 1024**3, 512 * 1024**2, 7680 * 1024**2),
        ("busybox-dfk-all-wrapped-disk-backed.txt", "/dev/mapper/ubuntu--vg-ubuntu--lv", 61611820 * KI, 18210440 * KI, 40238036 * KI),
    ],
)
def test_parse_df_fixtures(fixture, filesystem, size, used, available):
    row = parse_df(read(fixture))
    assert row == {
        "filesystem": filesystem,
        "mountpoint": "/dev/shm",
        "size_bytes": size,
        "used_bytes": used,
        "available_bytes": available,
        "block_size": 1024,
    }


def test_wrapped_busybox_rows_are_joined():
    rows = parse_df_rows(read("busybox-dfk-all-wrapped-disk-backed.txt"))
    assert [r["mountpoint"] for r in rows] == [
        "/",
        "/dev",
        "/sys/fs/cgroup",
        "/etc/hosts",
        "/dev/termination-log",
        "/dev/shm",
        "/run/secrets/kubernetes.io/serviceaccount",
    ]
    assert [r["filesystem"] for r in rows].count("/dev/mapper/ubuntu--vg-ubuntu--lv") == 3


def test_512_byte_blocks_and_mountpoint_with_spaces():
    output = "Filesystem 512-blocks Used Available Capacity Mounted on\ntmpfs 131072 1024 130048 1% /mnt/my shm\n"
    row = parse_df(output, mountpoint="/mnt/my shm")
    assert (row["size_bytes"], row["used_bytes"], row["mountpoint"], row["block_size"]) == (64 * 1024**2, 512 * 1024, "/mnt/my shm", 512)


def test_several_rows_without_the_mountpoint():
    output = read("gnu-dfk-all.txt").replace("/dev/shm", "/dev/other")
    with pytest.raises(ValueError, match="lists 5 filesystems and none is mounted at /dev/shm"):
        parse_df(output)


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("", "df output is empty"),
        (None, "df output is empty"),
        (read("error-no-such-file.txt"), "no 'Filesystem ...' header: 'df: /dev/shm: No such file or directory'"),
        ("sh: df: not found\n", "no 'Filesystem ...' header"),
        (read("gnu-dfh-human.txt"), "human-readable (df -h)"),
        ("Filesystem 1K-blocks Used Available Use% Mounted on\n", "header but no filesystem row"),
        ("Filesystem 1K-blocks Used Available Use% Mounted on\nshm 65536 zero 65536 0% /dev/shm\n", "cannot read the line"),
        ("Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/mapper/very-long-name\n", "has no figures after it"),
        ("Filesystem Blocks Used Available Use% Mounted on\nshm 1 0 1 0% /dev/shm\n", "unknown size column 'Blocks'"),
    ],
)
def test_parse_df_garbage(output, fragment):
    with pytest.raises(ValueError) as err:
        parse_df(output)
    assert fragment in str(err.value)
    assert "df -Pk /dev/shm" in str(err.value)


def test_volume_stats_from_summary():
    summary = read("kubelet-stats-summary.json")
    expected = {"volume": "dshm", "size_bytes": 8 * 1024**3, "used_bytes": 1024**3, "available_bytes": 7 * 1024**3}
    assert volume_stats_from_summary(summary, "ml", "trainer-7d9f8c6b5-x2x9z", "dshm") == expected
    assert volume_stats_from_summary(json.loads(summary), "ml", "trainer-7d9f8c6b5-x2x9z", "dshm") == expected


@pytest.mark.parametrize(
    ("namespace", "pod", "volume"),
    [("shop", "checkout-6b8d9f7c44-kq2lm", "dshm"), ("ml", "no-such-pod", "dshm"), ("other", "trainer-7d9f8c6b5-x2x9z", "dshm")],
)
def test_volume_stats_absent_is_none(namespace, pod, volume):
    assert volume_stats_from_summary(read("kubelet-stats-summary.json"), namespace, pod, volume) is None


@pytest.mark.parametrize(
    ("summary", "fragment"),
    [
        ("<html>502 Bad Gateway</html>", "is not JSON"),
        ("[]", "has no 'pods' list"),
        ('{"pods": {}}', "has no 'pods' list"),
        (
            '{"pods": [{"podRef": {"name": "p", "namespace": "n"}, "volume": [{"name": "dshm", "capacityBytes": "8Gi"}]}]}',
            "capacityBytes is '8Gi', not a byte count",
        ),
    ],
)
def test_volume_stats_garbage(summary, fragment):
    with pytest.raises(ValueError) as err:
        volume_stats_from_summary(summary, "n", "p", "dshm")
    assert fragment in str(err.value)


def test_df_complaints_mixed_into_stdout_are_skipped():
    output = "df: /proc/sys/fs/binfmt_misc: Permission denied\n" + read("gnu-dfk-all.txt")
    assert parse_df(output)["size_bytes"] == 64 * 1024**2
