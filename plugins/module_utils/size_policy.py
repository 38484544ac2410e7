# Copyright (c) shmfix.k8s developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PURE: the size policy: how large a workload's /dev/shm should be.

The inputs are already validated (options.size_options for the module options, assessment for
the ``shmfix.io/size-limit`` annotation): byte counts and a ratio, never raw strings.

Why a ratio of the pod limit: the kubelet caps the tmpfs at the pod memory limit anyway (a larger
sizeLimit is a lie), and shm pages count against the writing container's memory cgroup, so a
/dev/shm as large as the limit leaves nothing for the process: filling it OOM-kills the container.
Half leaves the other half for the working set. 64Mi is the floor because less than the runtime
default would be a regression. Without a limit there is nothing to take a ratio of; 1Gi covers
typical PyTorch DataLoader, Chrome and PostgreSQL needs without letting shared memory take the node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.shmfix.k8s.plugins.module_utils.podspec import RUNTIME_DEFAULT_BYTES, pod_memory_limit
from ansible_collections.shmfix.k8s.plugins.module_utils.units import GI, MI

DEFAULT_RATIO = 0.5
DEFAULT_MIN_BYTES = RUNTIME_DEFAULT_BYTES
DEFAULT_NO_LIMIT_BYTES = 1 * GI


def desired_size(pod_spec, *, parse, size_limit=None, size_ratio=None, min_size=None, max_size=None, annotation_bytes=None):
    """Size to give /dev/shm: ``(bytes, source)``; every size argument is a byte count or None.

    Precedence: the ``shmfix.io/size-limit`` annotation (the app owner's word; source 'annotation'),
    then an explicit ``size_limit`` ('size_limit'); both are used as given. Otherwise a ratio of
    the pod memory limit: ``size_ratio`` ('ratio') or 0.5 ('default_ratio'), rounded down to whole MiB,
    then clamped to [min_size (default 64Mi), max_size (default none)] (source 'min_size'/'max_size'
    when the clamp decided). A pod without a memory limit gets 1Gi ('default_no_memory_limit'),
    clamped the same way. ``parse`` reads the pod spec's own memory limits.
    """
    if annotation_bytes is not None:
        return annotation_bytes, "annotation"
    if size_limit is not None:
        return size_limit, "size_limit"
    low = min_size if min_size is not None else DEFAULT_MIN_BYTES
    pod_limit = pod_memory_limit(pod_spec or {}, parse=parse)[0]
    if pod_limit is None:
        size, source = DEFAULT_NO_LIMIT_BYTES, "default_no_memory_limit"
    else:
        ratio = size_ratio if size_ratio is not None else DEFAULT_RATIO
        size = max(MI, int(pod_limit * ratio) // MI * MI)
        source = "ratio" if size_ratio is not None else "default_ratio"
    if size < low:
        return low, "min_size"
    if max_size is not None and size > max_size:
        return max_size, "max_size"
    return size, source
