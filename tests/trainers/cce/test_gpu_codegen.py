"""The kernels compile for Hopper (sm_90a) with the real GPU compiler, spill-free, under
the newest Triton and under Triton 3.6, the GPU machine's.

No GPU needed: Triton lowers to PTX and the ptxas shipped in its wheel assembles it.
This catches what the interpreter accepts but the GPU compiler would reject. Triton 3.6
lives in its own folder (`make triton36`: `pip install --target .venv/triton-3.6`),
put first on PYTHONPATH for these subprocesses only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.cce import HAS_TRITON

TRITON_36 = Path(sys.prefix) / "triton-3.6"
HOPPER_SHARED_PER_BLOCK = 232_448  # 227 KiB usable per block (228 KiB per SM)
_LINE = re.compile(r"^(.*): shared (\d+) B, (\d+) registers, spills (\d+) B$")


def _has_nvidia_backend() -> bool:
    if not HAS_TRITON:
        return False
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return os.path.exists(get_ptxas(90).path)
    except Exception:
        return False


def _versions() -> list:
    installed = pytest.param("installed", id="newest")
    if (TRITON_36 / "triton").is_dir():
        return [installed, pytest.param("3.6", id="triton-3.6")]
    # CI installs it (Makefile); a bare checkout may not have it yet.
    must = os.environ.get("CI") == "true"
    mark = pytest.mark.skipif(not must, reason="no .venv/triton-3.6: run `make triton36`")
    return [installed, pytest.param("3.6", id="triton-3.6", marks=mark)]


def _codegen(version: str, *args: str) -> list[tuple[str, int, int, int]]:
    """(kernel, shared bytes, registers, spill bytes) per kernel compiled."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    if version == "3.6":
        assert (TRITON_36 / "triton").is_dir(), "run `make triton36`"
        env["PYTHONPATH"] = os.pathsep.join([str(TRITON_36), os.getcwd()])
    out = subprocess.run(
        [sys.executable, "-m", "trainers.cce.codegen_check", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    first = out.stdout.splitlines()[0]
    assert first.startswith(f"triton {'3.6.' if version == '3.6' else ''}"), first
    rows = []
    for line in out.stdout.splitlines()[1:]:
        match = _LINE.match(line)
        assert match, line
        rows.append((match[1], int(match[2]), int(match[3]), int(match[4])))
    return rows


needs_backend = pytest.mark.skipif(
    not _has_nvidia_backend(), reason="needs triton's NVIDIA backend"
)


@pytest.mark.slow
@needs_backend
@pytest.mark.parametrize("version", _versions())
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_default_configs_compile_for_sm90_without_spills(version: str, dtype: str) -> None:
    rows = _codegen(version, "--dtype", dtype)
    assert len(rows) == 6, rows
    for kernel, shared, _, spills in rows:
        assert spills == 0, kernel
        assert shared <= HOPPER_SHARED_PER_BLOCK, kernel


@pytest.mark.slow
@needs_backend
@pytest.mark.parametrize("version", [p for p in _versions() if p.values[0] == "3.6"])
def test_every_variant_compiles_for_the_gpu_machines_triton(version: str) -> None:
    """bf16, every option x alignment the default configs launch: all compile; spill-free
    unless D itself is not a multiple of 16 (no vectorised loads then)."""
    rows = _codegen(version, "--all")
    assert len(rows) == 12 + 12 * 5 + 6, len(rows)  # forward, backward, exact variants
    for kernel, shared, _, spills in rows:
        assert shared <= HOPPER_SHARED_PER_BLOCK, kernel
        assert spills == 0 or "odd D" in kernel, kernel


@pytest.mark.slow
@needs_backend
@pytest.mark.parametrize("version", [p for p in _versions() if p.values[0] == "3.6"])
def test_tuning_candidates_fit_hopper(version: str) -> None:
    """The benchmark's tuner tries only candidates within Hopper's shared memory that
    compile spill-free as it launches them (plain loss; 'extras' may spill)."""
    from trainers.cce import triton_config

    rows = _codegen(version, "--tuner")
    fwd, bwd = len(triton_config.FORWARD_CANDIDATES), len(triton_config.BACKWARD_CANDIDATES)
    assert len(rows) == 3 * fwd + 2 * bwd
    for kernel, shared, _, spills in rows:
        assert shared <= HOPPER_SHARED_PER_BLOCK, kernel
        assert spills == 0 or (" extras" in kernel and "forward" in kernel), kernel


@pytest.mark.slow
@pytest.mark.parametrize("version", [p for p in _versions() if p.values[0] == "3.6"])
def test_cpu_suite_passes_under_triton_36(version: str) -> None:
    """This folder's Triton-touching modules under Triton 3.6 with this machine's numpy:
    what cannot run (the interpreter, with numpy >= 2.4) skips, everything else passes.
    (The torch-path and benchmark-script modules use no kernel: not rerun, for time.)"""
    if os.environ.get("SCALINGLAB_TRITON36_SUITE"):
        pytest.skip("already inside the Triton 3.6 run")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TRITON_36), os.getcwd()]))
    env["SCALINGLAB_TRITON36_SUITE"] = "1"  # never recurse into this test
    here = Path(__file__).resolve().parent
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=600",
         str(here), *(f"--ignore={here / name}" for name in
                      ("test_gpu_codegen.py", "test_torch_path.py", "test_bench_smoke.py"))],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert re.search(r"\d+ passed", out.stdout), out.stdout[-2000:]
    assert "failed" not in out.stdout.splitlines()[-1], out.stdout[-2000:]
