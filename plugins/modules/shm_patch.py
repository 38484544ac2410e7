#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: shm_patch
short_description: Give Kubernetes workloads a sized memory-backed /dev/shm, or restore them
version_added: 0.1.0
description:
  - With O(state=present), mounts an C(emptyDir) with C(medium=Memory) and a C(sizeLimit) at C(/dev/shm) in every
    regular container of each selected workload whose C(/dev/shm) needs it.
  - With O(state=absent), restores exactly what the annotation C(shmfix.io/original) recorded when the workload was
    patched; the pod template is then equal to the one before the first patch.
  - One call handles every selected workload of a cluster. Each kind is listed once (once per namespace when
    O(namespaces) is set), nodes are listed once, and only workloads that change are written, O(parallelism) at a time.
    A run with nothing to change makes only its list calls.
  - Writes are minimal JSON patches (only the shm volume, the C(/dev/shm) mounts and the annotation) with field
    manager C(shmfix). They are guarded by what was read - C(metadata.generation), which moves with every change of
    the spec (or C(metadata.resourceVersion) for an object without one), the list entries they touch, and the
    annotation they write - so the API server refuses a write onto a concurrent edit of those parts. A status
    update by a controller is not a conflict. When the object changed in between, it is read again and re-planned,
    at most 3 times; a concurrent edit is never lost.
  - In check mode the same patches are sent with C(dryRun=All), so admission and validation still run, and the
    result says C(would_patch) / C(would_restore).
  - Jobs and bare Pods are immutable; they are reported (action C(immutable)), never patched.
  - A volume of the workload that already uses the name O(volume_name) but is not at C(/dev/shm) is left alone, and
    another name is picked.
author:
  - shmfix.k8s developers (@shmfix)
extends_documentation_fragment:
  - shmfix.k8s.auth
  - shmfix.k8s.selection
options:
  state:
    description:
      - V(present) patches the workloads; V(absent) restores what C(shmfix.io/original) recorded.
    type: str
    choices: [present, absent]
    default: present
  size_limit:
    description:
      - C(sizeLimit) of the volume, a Kubernetes quantity such as C(256Mi) or C(2Gi).
      - Mutually exclusive with O(size_ratio). The annotation C(shmfix.io/size-limit) on a workload overrides it.
      - When neither O(size_limit) nor O(size_ratio) is given, the size is half (0.5) of the pod's memory limit
        (pod-level limit, or the sum of the containers' limits when every container declares one), or 1Gi when
        the pod has no memory limit, then kept within O(min_size) and O(max_size).
    type: str
  size_ratio:
    description:
      - Size as a fraction of the pod's memory limit, with 0 < ratio <= 1.
      - A C(sizeLimit) above the pod memory limit would be capped by the kubelet anyway.
    type: float
  min_size:
    description:
      - Smallest size a computed (ratio or default) size may have. Default 64Mi (the runtime's default).
    type: str
  max_size:
    description:
      - Largest size a computed (ratio or default) size may have.
    type: str
  existing:
    description:
      - What to do with a workload that already has a volume at C(/dev/shm).
      - V(keep) leaves any existing volume at C(/dev/shm) as it is (findings still report it).
      - V(grow) raises a smaller C(sizeLimit) to the desired size and never lowers one. It bounds a C(medium=Memory) emptyDir without
        C(sizeLimit) only when the pod has no memory limit (its tmpfs is then sized by the node, and any pod can fill the node's memory
        through it); under a pod memory limit the tmpfs is already capped by that limit and is left alone.
      - V(replace) sets exactly the desired size, also lowering a larger C(sizeLimit), bounding every unbounded one, and replacing a
        disk-backed volume at C(/dev/shm).
    type: str
    choices: [keep, grow, replace]
    default: grow
  managed:
    description:
      - What to do with workloads managed by Helm, Argo CD or Flux, whose next sync would revert the patch.
      - V(warn) patches and adds a warning finding; V(skip) does not patch; V(patch) patches silently.
      - In every case each result carries C(snippet), the YAML to apply in the chart or manifest.
    type: str
    choices: [warn, skip, patch]
    default: warn
  volume_name:
    description:
      - Name of the volume to add.
    type: str
    default: dshm
  force:
    description:
      - With O(state=absent), also roll back a workload whose shm volume was changed since shmfix wrote it (for example a
        C(sizeLimit) raised by hand), putting back what was there before shmfix. Without it such a workload is skipped and
        the drift reported.
      - A volume shmfix added that other mounts now use is never removed (the API server would refuse it); restore it by hand.
    type: bool
    default: false
  strategy:
    description:
      - How a workload is fixed.
      - V(rollout) patches its pod template; the controller replaces the pods (a rollout).
      - V(inplace) resizes the running pods instead, through their C(resize) subresource, when that is possible (Kubernetes 1.37+
        with the feature gate C(InPlacePodVerticalScalingMemoryBackedVolumes) on the API server and the kubelets, KEP-6030) and
        leaves the pod template untouched (no rollout, no GitOps drift). A workload qualifies when the fix only changes the
        C(sizeLimit) of a C(medium=Memory) emptyDir at C(/dev/shm) that already has one, and every running pod has that volume
        sized, on a node that lists the feature in C(status.declaredFeatures). Each pod's old size is recorded in its
        annotation C(shmfix.io/resized-from); the module waits (O(resize_timeout)) until the kubelet has resized the tmpfs.
      - Every other workload is rolled out as with V(rollout), and its record says why (C(strategy_reason)); so is one whose
        kubelet refuses the resize (for example C(Infeasible) on a cgroup v1 node) or does not finish in time, after its pods
        were resized back.
      - In check mode the resizes are sent with C(dryRun=All); only the API server judges them then, not the kubelet.
      - With O(state=absent), the pods' C(shmfix.io/resized-from) annotations are resized back in place.
      - New pods still come from the untouched template; give them the size at admission (the C(shmfix.k8s.admission) role) or
        fix the template in its source.
    type: str
    choices: [rollout, inplace]
    default: rollout
  resize_timeout:
    description:
      - Seconds to wait, per workload, for the kubelets to resize the pods of O(strategy=inplace).
    type: int
    default: 60
  parallelism:
    description:
      - How many writes are in flight at once. Every object is planned first; only the ones that change are written.
      - Each write keeps its C(resourceVersion) precondition and its re-read and re-plan on a conflict.
    type: int
    default: 8
  unchanged_results:
    description:
      - How the records of workloads left unchanged appear in RV(results). V(full) (the default) gives every field, as
        for the others. V(brief) keeps C(kind), C(api_version), C(namespace), C(name), C(state), C(action),
        C(reason), C(before), C(after) and only the findings of severity warning or error. V(none) leaves them out.
      - RV(summary) counts them in every case; the records of every other outcome are always in full.
      - On thousands of workloads mostly already fixed, V(brief) or V(none) keeps the result small. A rerun then costs
        little more than its list calls, and AWX stores a small job event. For example, a full record takes about
        1 KB, so a no-op rerun over 1,000 workloads returns about 1 MB.
    type: str
    choices: [full, brief, none]
    default: full
attributes:
  check_mode:
    support: full
    description: Sends the writes with C(dryRun=All); nothing is persisted.
  diff_mode:
    support: full
    description: Shows the shm volume and the C(/dev/shm) mounts before and after, per changed workload.
  idempotent:
    support: full
    description: A second run with the same options reports C(changed=false) and makes no write.
requirements:
  - kubernetes (Python client)
seealso:
  - module: shmfix.k8s.shm_info
  - module: shmfix.k8s.shm_df_info
"""

EXAMPLES = r"""
- name: Give every Deployment of ml a 2Gi /dev/shm
  shmfix.k8s.shm_patch:
    kubeconfig: ~/.kube/config
    namespaces: [ml]
    kinds: [Deployment]
    size_limit: 2Gi
  register: fix

- name: Size /dev/shm at a quarter of each pod's memory limit, 256Mi to 4Gi, growing smaller volumes
  shmfix.k8s.shm_patch:
    size_ratio: 0.25
    min_size: 256Mi
    max_size: 4Gi
    existing: grow
    managed: skip

- name: Preview the change with a diff, without writing
  shmfix.k8s.shm_patch:
    size_limit: 1Gi
  check_mode: true
  diff: true

- name: Grow a too small sized /dev/shm of running pods in place (Kubernetes 1.37+, gate InPlacePodVerticalScalingMemoryBackedVolumes)
  shmfix.k8s.shm_patch:
    namespaces: [ml]
    size_limit: 1Gi
    strategy: inplace
  register: fix
  # fix.results[].strategy says per workload: inplace (resized_pods) or rollout (strategy_reason says why)

- name: Roll back everything shmfix changed in ml
  shmfix.k8s.shm_patch:
    namespaces: [ml]
    state: absent
"""

RETURN = r"""
results:
  description:
    - One record per selected workload, as in M(shmfix.k8s.shm_info), plus C(action) (patched, would_patch,
      restored, would_restore, resized, would_resize, unchanged, skipped, immutable, failed), C(reason), C(before) and C(after)
      (C(state), C(size_limit_bytes), C(effective_bytes)), C(snippet) (YAML for GitOps/Helm-managed workloads)
      and C(error).
    - With O(strategy=inplace), C(strategy) (inplace or rollout) and C(strategy_reason) on every record that needed a change, and
      on a record resized in place (action C(resized) / C(would_resize)) C(resized_pods) (pod, uid, node, volume, from, to,
      C(actuated_s) - the seconds from the resize request until the kubelet reported it done - and C(restart_count)) and C(pods).
    - O(unchanged_results) makes the records of unchanged workloads brief, or leaves them out.
    - In diff mode a changed record also carries its own C(diff) and C(changed=true), so that Ansible shows every
      workload's diff also when the task runs in a loop (as the remediate role's waves do).
  returned: success
  type: list
  elements: dict
  sample:
    - kind: Deployment
      api_version: apps/v1
      namespace: ml
      name: trainer
      action: patched
      reason: "add emptyDir dshm (Memory, 2Gi) at /dev/shm"
      before: {state: runtime_default, size_limit_bytes: null, effective_bytes: 67108864}
      after: {state: sized, size_limit_bytes: 2147483648, effective_bytes: 2147483648}
      snippet: null
      error: null
summary:
  description:
    - Number of workloads per outcome (check mode counts would_patch as patched), and C(conflicts_retried), the writes refused
      because the object changed since it was read, then read again and re-planned.
  returned: success
  type: dict
  sample: {patched: 3, restored: 0, resized: 0, unchanged: 8, skipped: 1, immutable: 2, failed: 0, conflicts_retried: 1}
api_retries:
  description: Requests answered 429 or 5xx and sent again after a backoff.
  returned: success
  type: int
  sample: 0
api_calls:
  description: Number of Kubernetes API requests the module made (lists, node list, writes, conflict re-reads).
  returned: always
  type: int
  sample: 11
diff:
  description: Before/after of the changed template parts, one entry per changed workload (with C(--diff)).
  returned: when diff mode is on
  type: list
  elements: dict
"""

import copy

from ansible_collections.shmfix.k8s.plugins.module_utils.ansible_module import ShmfixModule
from ansible_collections.shmfix.k8s.plugins.module_utils.args_common import (
    AUTH_ARG_SPEC,
    SELECTION_ARG_SPEC,
    SIZE_POLICY_ARG_SPEC,
    SIZE_POLICY_MUTUALLY_EXCLUSIVE,
)
from ansible_collections.shmfix.k8s.plugins.module_utils.client import kube_from_params
from ansible_collections.shmfix.k8s.plugins.module_utils.errors import ShmfixError
from ansible_collections.shmfix.k8s.plugins.module_utils.patching import DEFAULT_PARALLELISM, run_patch

argument_spec = copy.deepcopy(AUTH_ARG_SPEC)
argument_spec.update(copy.deepcopy(SELECTION_ARG_SPEC))
argument_spec.update(copy.deepcopy(SIZE_POLICY_ARG_SPEC))
argument_spec.update(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    managed=dict(type="str", choices=["warn", "skip", "patch"], default="warn"),
    parallelism=dict(type="int", default=DEFAULT_PARALLELISM),
    force=dict(type="bool", default=False),
    strategy=dict(type="str", choices=["rollout", "inplace"], default="rollout"),
    resize_timeout=dict(type="int", default=60),
    unchanged_results=dict(type="str", choices=["full", "brief", "none"], default="full"),
)


def main():
    module = ShmfixModule(argument_spec=argument_spec, supports_check_mode=True, mutually_exclusive=SIZE_POLICY_MUTUALLY_EXCLUSIVE)
    try:
        result = run_patch(kube_from_params(module.params), module.params, check_mode=module.check_mode, want_diff=module._diff)
    except ShmfixError as err:
        module.fail_json(**err.fail_kwargs())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
