"""A tiny kernel that tells whether the Triton interpreter runs this package's loops.

Triton 3.6's interpreter converts a loop bound with `int()` of a one-element numpy
array, which numpy >= 2.4 refuses (fixed in Triton 3.9): every kernel with a
`range(0, runtime_value)` loop then fails. Imported lazily, only with
TRITON_INTERPRET=1 set, so `triton.jit` builds the interpreted kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _probe_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(0, n):  # a runtime loop bound, as in every CCE kernel
        acc += tl.load(x_ptr + i * BLOCK + tl.arange(0, BLOCK))
    tl.store(out_ptr + tl.arange(0, BLOCK), acc)


def interpreter_error() -> str | None:
    """None when the interpreter runs the probe right, else what went wrong."""
    x = torch.arange(32, dtype=torch.float32)
    out = torch.zeros(16, dtype=torch.float32)
    try:
        _probe_kernel[(1,)](x, out, 2, BLOCK=16)
    except Exception as err:  # the interpreter wraps its failures in InterpreterError
        return f"{type(err).__name__}: {str(err)[:200]}"
    if not torch.equal(out, x[:16] + x[16:]):
        return "the interpreter computed a wrong sum"
    return None
