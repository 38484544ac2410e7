# -*- coding: utf-8 -*-
# Copyright: shmfix.k8s contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Workload selection options of shmfix.k8s.shm_info and shmfix.k8s.shm_patch.
    DOCUMENTATION = r"""
options:
  namespaces:
    description:
      - Namespaces to look in. Default is every namespace (one list call per kind for the whole cluster).
      - With namespaces given, each kind is listed once per namespace, and a namespace that does not exist fails the task.
    type: list
    elements: str
  exclude_namespaces:
    description:
      - Namespaces never selected, also when O(namespaces) lists them.
    type: list
    elements: str
    default: [kube-system, kube-public, kube-node-lease]
  kinds:
    description:
      - Built-in workload kinds to select.
      - C(ReplicaSet) and C(ReplicationController) objects owned by another controller (a Deployment) are left to their owner.
      - C(Job) and bare C(Pod) pod templates are immutable; they are reported with RV(ignore:state=immutable) and their owner, never patched.
        Pods owned by a controller are not reported (their owner is).
      - Custom resources go in O(extra_kinds).
    type: list
    elements: str
    choices: [Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, CronJob, Job, Pod]
    default: [Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, CronJob, Job, Pod]
  label_selector:
    description:
      - Kubernetes label selector applied to the workload objects, for example C(app=web,tier!=cache).
      - A malformed selector fails the task naming the selector.
    type: str
  names:
    description:
      - Only workloads with these names.
    type: list
    elements: str
  extra_kinds:
    description:
      - Custom resources that embed a pod template, for example an Argo Rollout.
      - Written with JSON patches (strategic merge does not apply to custom resources).
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: The C(apiVersion) of the resource, for example C(argoproj.io/v1alpha1).
        type: str
        required: true
      kind:
        description: The kind, for example C(Rollout).
        type: str
        required: true
      template_path:
        description: Dotted path of the pod template inside the object.
        type: str
        default: spec.template
notes:
  - The annotation C(shmfix.io/skip=true) on a workload excludes it; C(shmfix.io/size-limit) sets its size (a Kubernetes quantity).
    An annotation with a bad value becomes an error finding on that workload; the others proceed.
"""
