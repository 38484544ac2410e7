"""The machine's CPU, from /proc: what the benchmark and its profiles read around a run (all cores, and the
cluster processes localcluster's pid files name)."""

import os
import time


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
