"""The kernels compile for Hopper (sm_90) with the real GPU compiler, spill-free.

No GPU needed: Triton lowers to PTX and the ptxas shipped in its wheel assembles it.
This catches what the interpreter accepts but the GPU compiler would reject.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainers.cce import HAS_TRITON


def _has_nvidia_backend() -> bool:
    if not HAS_TRITON:
        return False
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        return os.path.exists(get_ptxas(90).path)
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _has_nvidia_backend(), reason="needs triton's NVIDIA backend")
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_default_configs_compile_for_sm90_without_spills(dtype: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    out = subprocess.run(
        [sys.executable, "-m", "trainers.cce.codegen_check", "--dtype", dtype],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if "registers" in line]
    assert len(lines) == 5, out.stdout
    for line in lines:
        spills = int(line.rsplit("spills ", 1)[1].split()[0])
        # Half precision is what training uses: no spills. fp32 (ieee dots) may spill a
        # little; it must compile.
        assert spills == 0 if dtype != "float32" else spills <= 256, line
