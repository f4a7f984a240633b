"""Host health as metrics (psutil): CPU, load, memory, swap, disk and process count, written to
Influx as the ``host`` measurement for the ops board and alert rules. A sample is taken by the
composition root on the wall clock (``tape host-metrics``); nothing here runs in the kernel."""

from __future__ import annotations

import os
from pathlib import Path

from projections.metrics_influx import line

__all__ = ["host_lines", "host_sample"]


def host_sample(disk: Path) -> dict[str, int | float]:
    """One reading: CPU % since the previous call (the first call of a process reads 0), load
    over 1 minute, memory and swap in use, free and used space on ``disk``'s file system,
    processes."""
    import psutil

    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    usage = psutil.disk_usage(str(disk))
    return {
        "cpu_pct": float(psutil.cpu_percent(interval=None)),
        "load_1m": float(os.getloadavg()[0]),
        "mem_used_pct": float(memory.percent),
        "mem_available_bytes": int(memory.available),
        "swap_used_pct": float(swap.percent),
        "disk_used_pct": float(usage.percent),
        "disk_free_bytes": int(usage.free),
        "processes": len(psutil.pids()),
    }


def host_lines(hostname: str, disks: list[Path], ts_ns: int) -> list[str]:
    """Line protocol: one ``host`` point per disk watched (the CPU and memory fields repeat)."""
    return [
        line("host", {"host": hostname, "disk": str(disk)}, host_sample(disk), ts_ns) for disk in disks
    ]
