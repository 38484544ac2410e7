"""The machine's CPU, from /proc: what the benchmark and its profiles read around a run (all cores, and the
cluster processes localcluster's pid files name)."""

import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_DIR = os.path.join(ROOT, ".localcluster", "run")  # the main cluster's pid files (etcd is shared with the fleet)
FLEET_RUN_DIR = os.path.join(ROOT, ".localcluster", "fleet", "run")


def machine_jiffies():
    """(busy, total) jiffies of all cores since boot; busy excludes idle and iowait."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def machine_busy(seconds=1.0):
    """Share of the machine's CPU time (all cores) that was busy during the next ``seconds``."""
    busy0, total0 = machine_jiffies()
    time.sleep(seconds)
    busy1, total1 = machine_jiffies()
    return (busy1 - busy0) / float(max(total1 - total0, 1))


def pid_of(pidfile):
    """The live pid a localcluster pid file names ("<pid> <binary>"), checked against /proc/<pid>/exe, or None."""
    try:
        with open(pidfile) as f:
            parts = f.read().split()
        pid = int(parts[0])
        exe = os.readlink("/proc/%d/exe" % pid).replace(" (deleted)", "")
        if len(parts) > 1 and exe != parts[1]:
            return None
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        return pid
    except (OSError, ValueError, IndexError):
        return None


def process_cpu_seconds(pid):
    """CPU seconds (user + system) the process has used so far, from /proc/<pid>/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def fleet_pidfile(i, component="kube-apiserver"):
    return os.path.join(FLEET_RUN_DIR, "shmfix-fleet-%d-%s.pid" % (i, component))


def control_plane_pidfiles(clusters):
    """Pid files of the fleet clusters' kube-apiservers and kube-controller-managers, and of the etcd they share."""
    files = [fleet_pidfile(i, c) for i in clusters for c in ("kube-apiserver", "kube-controller-manager")]
    return files + [os.path.join(RUN_DIR, "etcd.pid")]


def cpu_snapshot(pidfiles):
    """{pid file: (pid, CPU seconds so far)} of the pid files that name a live process."""
    pids = {path: pid_of(path) for path in pidfiles}
    return {path: (pid, process_cpu_seconds(pid)) for path, pid in pids.items() if pid}


def cpu_since(snapshot):
    """{pid file: CPU seconds its process used since ``snapshot``} (0 for one that ended: a victim's killed apiserver)."""
    used = {}
    for path, (pid, was) in snapshot.items():
        try:
            used[path] = process_cpu_seconds(pid) - was
        except OSError:
            used[path] = 0.0
    return used
