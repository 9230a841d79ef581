"""Chunked linear cross-entropy that never materialises the logit matrix.

`linear_cross_entropy(hidden, weight, targets, ...)` equals
`F.cross_entropy((hidden @ weight.T + bias).float(), targets)` (see `api.py` for the full
math); `LinearCrossEntropy` is the `nn.Module` form. Triton is optional: `HAS_TRITON`.
"""

from trainers.cce.api import linear_cross_entropy
from trainers.cce.capabilities import HAS_NATIVE_LCE, HAS_TRITON, triton_supports
from trainers.cce.module import LinearCrossEntropy

__all__ = [
    "HAS_NATIVE_LCE",
    "HAS_TRITON",
    "LinearCrossEntropy",
    "linear_cross_entropy",
    "triton_supports",
]
