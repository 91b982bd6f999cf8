"""What the benchmarks record of the machine they ran on (torch-free, so a benchmark's child processes stay light)."""

from __future__ import annotations

import os
import platform
import resource

from matryoshka_adaptor.numerics import cpu_flags, cpuinfo, numerics_pins

# vector instruction sets that decide which kernels torch and BLAS run: two CPUs with the same model name but other
# sets round otherwise, and training can then keep other epochs (docs/evidence.md, "An AVX-512 CPU")
SIMD_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile")


def cpu_name() -> str:
    """The CPU model (platform.processor() is often empty on Linux)."""
    return cpuinfo("model name") or platform.processor()


def simd() -> list[str]:
    """Which of SIMD_FLAGS the CPU has."""
    flags = cpu_flags()
    return [f for f in SIMD_FLAGS if f in flags]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary() -> dict[str, object]:
    """What a results JSON records of its machine. The CPU model, its vector instructions and the numerics mode
    matter beyond speed: other kernels round otherwise, and training can then choose other epochs."""
    return {"platform": platform.platform(), "cpu": cpu_name(), "simd": simd(), "cpus": os.cpu_count(),
            "numerics": numerics_pins()}
