"""Triton is optional: without it the package imports and `impl="auto"` uses torch."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from trainers.cce import capabilities

_NO_TRITON = """
import sys
sys.modules["triton"] = None  # makes `import triton` raise ImportError
import torch
import trainers.cce as cce
assert cce.HAS_TRITON is False
assert not cce.triton_supports(torch.device("cpu"))
h, w = torch.randn(6, 4, requires_grad=True), torch.randn(9, 4)
t = torch.tensor([0, 1, 2, 3, -100, 8])
loss = cce.linear_cross_entropy(h, w, t, softcap=2.0)
loss.backward()
try:
    cce.linear_cross_entropy(h, w, t, impl="triton")
except RuntimeError as err:
    assert "impl='triton'" in str(err)
else:
    raise AssertionError("impl='triton' must refuse without triton")
print("ok")
"""


def test_import_and_auto_without_triton() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NO_TRITON], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_auto_never_picks_the_interpreter() -> None:
    assert not capabilities.auto_uses_triton(torch.device("cpu"))
    assert capabilities.triton_supports(torch.device("cpu")) == (
        capabilities.HAS_TRITON
        and capabilities.triton_interpret()
        and capabilities.interpreter_problem() is None
    )


def _version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


@pytest.mark.skipif(
    not (capabilities.HAS_TRITON and capabilities.triton_interpret()),
    reason="needs triton and TRITON_INTERPRET=1 (set by tests/conftest.py on CPU machines)",
)
def test_interpreter_probe_knows_the_broken_combination() -> None:
    """Triton < 3.9 with numpy >= 2.4 cannot interpret a runtime loop bound (the GPU
    machine has Triton 3.6 and numpy 2.5); every other combination here can."""
    import numpy
    import triton

    broken = _version(triton.__version__) < (3, 9) and _version(numpy.__version__) >= (2, 4)
    problem = capabilities.interpreter_problem()
    if broken:
        assert problem is not None and "0-dimensional" in problem, problem
    else:
        assert problem is None
