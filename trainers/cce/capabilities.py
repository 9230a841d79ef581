"""What this machine can run, probed once at import.

Triton is optional (the slim image has no triton): everything that needs it checks
`HAS_TRITON` instead of re-trying the import.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

try:  # the slim image ships without triton
    import triton
    import triton.language  # noqa: F401

    HAS_TRITON = True
except ImportError:  # pragma: no cover - depends on the image
    HAS_TRITON = False


def triton_interpret() -> bool:
    """TRITON_INTERPRET=1: kernels run on CPU tensors, one program at a time (tests).

    Read at call time, not import time: the tests set it after something may already
    have imported this module.
    """
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


_probed: list[str | None] = []  # the probe's answer, once known (a list: no functools
# cache, which torch.compile would trace through)


def interpreter_problem() -> str | None:
    """Why the Triton interpreter cannot run the kernels here, or None when it can.

    Probed once per process by running a tiny kernel (`interpreter_probe.py`): Triton
    3.6's interpreter breaks with numpy >= 2.4, and the GPU machine has both. Only
    meaningful with TRITON_INTERPRET=1 set. While torch.compile traces, no kernel can
    run: an unprobed interpreter then counts as working (the op fails loudly if not).
    """
    if _probed:
        return _probed[0]
    if not HAS_TRITON:
        return "triton is not installed"
    if torch.compiler.is_compiling():
        return None
    from trainers.cce.interpreter_probe import interpreter_error

    _probed.append(interpreter_error())
    return _probed[0]


# PyTorch >= 2.10-ish ships a chunked `F.linear_cross_entropy` with an options object.
HAS_NATIVE_LCE = hasattr(F, "linear_cross_entropy") and hasattr(
    torch.nn, "LinearCrossEntropyOptions"
)

# bf16 tl.dot and bf16 atomics need Ampere or newer.
_MIN_CAPABILITY = (8, 0)


def triton_supports(device: torch.device) -> bool:
    """True when the Triton kernels can run on tensors living on `device`."""
    if not HAS_TRITON:
        return False
    if device.type == "cpu":
        return triton_interpret() and interpreter_problem() is None
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= _MIN_CAPABILITY


def auto_uses_triton(device: torch.device) -> bool:
    """`impl="auto"` picks Triton only on a real GPU: the interpreter is far too slow."""
    return device.type == "cuda" and triton_supports(device)
