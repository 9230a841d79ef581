"""Gradient filtering: which softmax-gradient entries are below numerical precision.

The backward skips a (token block, vocab block) tile when every entry of its logit
gradient is below `threshold(dtype) * scale_i` for its token i, where `scale_i` bounds
that token's largest possible entry (the one-hot term). Such entries are lost anyway:
the gradients are accumulated in `dtype`, whose rounding step near a unit-scale value
is 2^-mantissa_bits; we keep five more bits of headroom (Wijmans et al. use about
2^-12 for bf16, which this rule reproduces).
"""

from __future__ import annotations

import torch

_MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10, torch.float32: 23}
_HEADROOM_BITS = 5

# Passed instead of a threshold in exact mode: every tile counts as live.
NO_FILTER = -1.0


def threshold(dtype: torch.dtype) -> float:
    """Relative magnitude below which a gradient entry is dropped, for inputs of `dtype`."""
    bits = _MANTISSA_BITS.get(dtype, 23)
    return 2.0 ** -(bits + _HEADROOM_BITS)


def token_thresholds(
    coef_p: torch.Tensor, coef_onehot: torch.Tensor, dtype: torch.dtype, exact: bool
) -> torch.Tensor:
    """Per-token absolute thresholds for the backward kernel (fp32, shape (N,)).

    `coef_p` multiplies the softmax and `coef_onehot` the one-hot term of the logit
    gradient, so `|coef_p| + |coef_onehot|` bounds every entry of that token's row.
    """
    if exact:
        return torch.full_like(coef_p, NO_FILTER, dtype=torch.float32)
    scale = coef_p.abs() + coef_onehot.abs()
    return (threshold(dtype) * scale).float()
