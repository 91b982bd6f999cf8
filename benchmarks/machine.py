"""What the benchmarks record of the machine they ran on (torch-free, so a benchmark's child processes stay light)."""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (platform.processor() is often empty on Linux)."""
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary() -> dict[str, object]:
    """What a results JSON records of its machine. The CPU model matters beyond speed: numpy encoders (USE) round
    differently on another CPU's BLAS kernels, and training can then choose other epochs."""
    return {"platform": platform.platform(), "cpu": cpu_name(), "cpus": os.cpu_count()}
