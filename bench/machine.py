"""The machine's CPU, from /proc/stat: what the benchmark and its profiles read around a run."""

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
