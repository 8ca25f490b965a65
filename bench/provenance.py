"""Where a benchmark ran: the machine, and the commit of the ``pet_mta`` it imported.

torch and pet_mta are imported only where needed (``bench/accuracy.py`` drives
``mtt`` and imports neither).
"""

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict


def source_commit() -> str:
    """The git commit of the ``pet_mta`` package that is imported, with a note if
    its sources differ from that commit."""
    import pet_mta

    source = Path(pet_mta.__file__).resolve().parent

    def git(*command: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *command], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", ".")
    return commit + (" (with uncommitted changes in pet_mta/)" if dirty else "")


def cpu_name() -> str:
    """The CPU's model name (from ``/proc/cpuinfo`` where there is one)."""
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line for line in cpuinfo if line.startswith("model name")]
        if names:
            cpu = names[0].split(":", 1)[1].strip()
    return cpu


def machine() -> Dict[str, Any]:
    """CPU, cores, torch threads, torch and Python versions."""
    import torch

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
