"""The machine a benchmark runs on: a short description, the library versions, and this process's memory."""

from __future__ import annotations

import os
import platform
import re
import resource

import torch


def machine() -> str:
    """A short description: CPU model, cores seen / torch threads, RAM."""
    cpu = platform.processor() or "cpu"
    try:
        m = re.search(r"model name\s*:\s*(.+)", open("/proc/cpuinfo").read())
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {ram:.0f} GiB RAM"


def versions() -> dict:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def _status_kib(field: str) -> int:
    m = re.search(rf"{field}:\s+(\d+) kB", open("/proc/self/status").read())
    return int(m.group(1)) if m else 0


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS mark (VmHWM) to its current RSS (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> dict:
    """Current RSS, peak since the last reset, and peak over the process's life (ru_maxrss), in MiB."""
    return {
        "rss": _status_kib("VmRSS") / 1024,
        "hwm": _status_kib("VmHWM") / 1024,
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
